"""The PromQL each provider renders, and that context values cannot change its shape."""

from datetime import timedelta
from typing import Any

import pytest

from rollout.errors import InputError
from rollout.metrics.base import QueryContext, Role
from rollout.metrics.providers import query_context, render_both, render_queries
from rollout.policy import CelloMetric, IstioMetric, PromqlMetric

CTX = QueryContext(
    namespace="shop",
    service="cart",
    version="v2",
    canary_version="v2",
    stable_version="v1",
    window="1m",
)


def istio(**fields: Any) -> IstioMetric:
    return IstioMetric.model_validate({"name": "m", "provider": "istio", "max": 1, **fields})


def cello(**fields: Any) -> CelloMetric:
    return CelloMetric.model_validate({"name": "m", "provider": "cello", "max": 1, **fields})


def test_istio_error_rate() -> None:
    queries = render_queries(istio(kind="errorRate"), CTX)
    sel = (
        'reporter="destination",destination_workload_namespace="shop",'
        'destination_service_name="cart",destination_version="v2"'
    )
    assert queries.value == (
        f'(sum(rate(istio_requests_total{{{sel},response_code=~"5.."}}[1m])) or on() vector(0))'
        f" / sum(rate(istio_requests_total{{{sel}}}[1m]))"
    )
    assert queries.requests == f"sum(increase(istio_requests_total{{{sel}}}[1m]))"


def test_istio_latency_from_ms_buckets() -> None:
    value = render_queries(istio(kind="latency", quantile=0.95), CTX).value
    assert value.startswith("histogram_quantile(0.95, sum by (le) (rate(")
    assert "istio_request_duration_milliseconds_bucket{" in value
    assert "* 1000" not in value


def test_cello_latency_from_second_buckets_in_ms_never_sum() -> None:
    queries = render_queries(cello(kind="latency", quantile=0.99), CTX)
    assert queries.value == (
        "histogram_quantile(0.99, sum by (le) (rate(cello_http_request_duration_seconds_bucket"
        '{namespace="shop",version="v2"}[1m]))) * 1000'
    )
    assert "_sum" not in queries.value + queries.requests
    assert queries.requests == (
        'sum(increase(cello_http_requests_total{namespace="shop",version="v2"}[1m]))'
    )


def test_cello_label_names_are_configurable() -> None:
    spec = cello(
        kind="errorRate",
        labels={"namespace": "kubernetes_namespace", "version": "pod_version", "service": "app"},
    )
    value = render_queries(spec, CTX).value
    assert 'kubernetes_namespace="shop",pod_version="v2",app="cart",status=~"5.."' in value


def test_same_window_for_canary_and_stable() -> None:
    both = render_both(
        istio(kind="errorRate"),
        namespace="shop",
        service="cart",
        canary_version="v2",
        stable_version="v1",
        window=timedelta(seconds=90),
    )
    assert 'destination_version="v2"' in both[Role.CANARY].value
    assert 'destination_version="v1"' in both[Role.STABLE].value
    assert "[1m30s]" in both[Role.CANARY].value and "[1m30s]" in both[Role.STABLE].value


INJECTION = 'v2"} or vector(1) #'


@pytest.mark.parametrize(
    "field", ["namespace", "service", "version", "canary_version", "stable_version"]
)
@pytest.mark.parametrize(
    "spec",
    [istio(kind="errorRate"), cello(kind="latency", quantile=0.5)],
    ids=["istio", "cello"],
)
def test_injection_through_context_is_rejected(field: str, spec: Any) -> None:
    ctx = QueryContext(**{**CTX.__dict__, field: INJECTION})
    with pytest.raises(InputError):
        render_queries(spec, ctx)


def test_injection_through_window_is_rejected() -> None:
    ctx = QueryContext(**{**CTX.__dict__, "window": "1m])) or vector(1"})
    with pytest.raises(InputError, match="window"):
        render_queries(istio(kind="errorRate"), ctx)


def test_query_context_checks_every_value_up_front() -> None:
    with pytest.raises(InputError, match="stable version"):
        query_context(
            Role.CANARY,
            namespace="shop",
            service="cart",
            canary_version="v2",
            stable_version=INJECTION,
            window=timedelta(minutes=1),
        )


PROMQL = {
    "name": "custom",
    "provider": "promql",
    "max": 0.1,
    "query": 'sum(rate(errs{ns="{{ namespace }}",svc="{{service}}",v="{{ version }}"}'
    '[{{ window }}])) / on() sum(rate(errs{v="{{ stable }}"}[{{ window }}]))'
    ' + 0 * count(up{v="{{ canary }}"})',
    "requestsQuery": 'sum(increase(reqs{v="{{ version }}"}[{{ window }}]))',
}


def test_promql_template_substitution() -> None:
    queries = render_queries(PromqlMetric.model_validate(PROMQL), CTX)
    assert queries.value == (
        'sum(rate(errs{ns="shop",svc="cart",v="v2"}[1m])) / on() sum(rate(errs{v="v1"}[1m]))'
        ' + 0 * count(up{v="v2"})'
    )
    assert queries.requests == 'sum(increase(reqs{v="v2"}[1m]))'


@pytest.mark.parametrize("field", ["namespace", "stable_version", "canary_version", "service"])
def test_promql_template_rejects_injected_values(field: str) -> None:
    ctx = QueryContext(**{**CTX.__dict__, field: INJECTION})
    with pytest.raises(InputError):
        render_queries(PromqlMetric.model_validate(PROMQL), ctx)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ('sum(x{v="{{ subset }}"})', "unknown template variable {{ subset }}"),
        ('sum(x{v="{{ version"})', "malformed"),
        ('sum(x{v="{{ 1abc }}"})', "malformed"),
    ],
)
def test_promql_template_errors(query: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("{", r"\{").replace("}", r"\}")):
        PromqlMetric.model_validate({**PROMQL, "query": query})
