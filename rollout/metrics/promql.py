"""PromQL text: the request-metric queries shared by `istio` and `cello`, and the `promql`
provider's user templates.

Istio and Cello describe HTTP traffic the same way (a request counter labelled by status
code and a latency histogram), so one set of builders renders both; only series names,
label names and the latency unit differ, and those are a `RequestSeries`.
"""

import re
from dataclasses import dataclass
from typing import Literal

from rollout.errors import InputError
from rollout.metrics.base import MetricQueries, QueryContext
from rollout.metrics.labels import check_duration, check_label_value, escape_label_value

# The variables a `promql` template may use, and what they stand for (documented for users).
TEMPLATE_VARIABLES: dict[str, str] = {
    "namespace": "the target's namespace",
    "service": "the service being rolled out",
    "version": "the version label value of the subset being measured (canary or stable)",
    "canary": "the canary subset's version label value",
    "stable": "the stable subset's version label value",
    "window": "the analysis window as a PromQL duration, e.g. 1m",
}
# What the built-in providers measure about requests.
RequestMetricKind = Literal["errorRate", "latency"]
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class RequestSeries:
    """Where a provider finds HTTP requests: counter, its status label, latency histogram.

    `latency_scale` turns the histogram's unit into milliseconds (1000 for seconds).
    """

    requests_total: str
    status_label: str
    duration_bucket: str
    latency_scale: float = 1.0


def selector(matchers: list[str], *extra: str) -> str:
    """`{a="x",b="y"}` from already checked and escaped matchers."""
    return "{" + ",".join([*matchers, *extra]) + "}"


def requests_query(series: RequestSeries, matchers: list[str], window: str) -> str:
    """How many requests the selection received over the window."""
    check_duration("window", window)
    return f"sum(increase({series.requests_total}{selector(matchers)}[{window}]))"


def error_rate_query(series: RequestSeries, matchers: list[str], window: str) -> str:
    """Share of 5xx responses over all responses in the window (0..1).

    The numerator falls back to 0 when there is no 5xx series at all (a healthy service
    often has none), so "no errors" reads as 0 and not as "no data"; with no requests at
    all the denominator is empty and so is the result, which the judge calls inconclusive.
    """
    check_duration("window", window)
    errors = selector(matchers, f'{series.status_label}=~"5.."')
    total = selector(matchers)
    return (
        f"(sum(rate({series.requests_total}{errors}[{window}])) or on() vector(0))"
        f" / sum(rate({series.requests_total}{total}[{window}]))"
    )


def latency_query(series: RequestSeries, matchers: list[str], window: str, quantile: float) -> str:
    """The `quantile` latency in milliseconds, from histogram buckets.

    Never from `_sum`/`_count`: cello 1.4.1 has been seen exporting a negative `_sum`.
    """
    check_duration("window", window)
    if not 0 < quantile < 1:
        raise InputError(f"quantile {quantile} is outside (0, 1)")
    query = (
        f"histogram_quantile({quantile}, sum by (le) "
        f"(rate({series.duration_bucket}{selector(matchers)}[{window}])))"
    )
    if series.latency_scale != 1:
        query = f"{query} * {series.latency_scale:g}"
    return query


def request_metric_queries(
    series: RequestSeries,
    matchers: list[str],
    kind: RequestMetricKind,
    window: str,
    quantile: float | None,
) -> MetricQueries:
    """The value and requests queries of a built-in metric for one subset's selection."""
    if kind == "errorRate":
        value = error_rate_query(series, matchers, window)
    else:
        if quantile is None:
            raise InputError("a latency metric needs a quantile")
        value = latency_query(series, matchers, window, quantile)
    return MetricQueries(value=value, requests=requests_query(series, matchers, window))


def template_variables(template: str) -> list[str]:
    """The variable names a template uses, in order of appearance."""
    return _PLACEHOLDER.findall(template)


def check_template(template: str) -> str:
    """Return `template` if every `{{ ... }}` in it is a known variable, else raise ValueError.

    Raises ValueError (not InputError) because policy validation calls it from pydantic.
    """
    for name in template_variables(template):
        if name not in TEMPLATE_VARIABLES:
            known = ", ".join(TEMPLATE_VARIABLES)
            raise ValueError(f"unknown template variable {{{{ {name} }}}} (known: {known})")
    leftover = _PLACEHOLDER.sub("", template)
    if "{{" in leftover or "}}" in leftover:
        raise ValueError("malformed template placeholder: use {{ name }}")
    return template


def render_template(template: str, ctx: QueryContext) -> str:
    """Substitute the context into a checked template; label values are checked and escaped.

    Values are inserted without quotes: the template writes `version="{{ version }}"`.
    """
    try:
        check_template(template)
    except ValueError as exc:
        raise InputError(f"query template: {exc}") from exc
    check_duration("window", ctx.window)
    values = {
        "namespace": ctx.namespace,
        "service": ctx.service,
        "version": ctx.version,
        "canary": ctx.canary_version,
        "stable": ctx.stable_version,
    }
    for name, value in values.items():
        check_label_value(name, value)
    escaped = {name: escape_label_value(value) for name, value in values.items()}
    escaped["window"] = ctx.window
    return _PLACEHOLDER.sub(lambda m: escaped[m.group(1)], template)


def render_user_queries(query: str, requests: str, ctx: QueryContext) -> MetricQueries:
    """The `promql` provider: the user's value and requests templates for one subset."""
    return MetricQueries(value=render_template(query, ctx), requests=render_template(requests, ctx))
