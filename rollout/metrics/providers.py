"""The provider registry: a metric spec and a query context in, the subset's PromQL out.

Callers (the Prometheus reader, `rollout validate`) never pick a provider themselves: the
spec's `provider` field does, here, so adding a provider is one entry in `render_queries`.
"""

from datetime import timedelta

from rollout.metrics import cello, istio
from rollout.metrics.base import MetricQueries, QueryContext, Role
from rollout.metrics.labels import check_duration, check_label_value, format_duration
from rollout.metrics.promql import render_user_queries
from rollout.policy import AnyMetric, CelloMetric, IstioMetric, PolicySpec, PromqlMetric


def render_queries(spec: AnyMetric, ctx: QueryContext) -> MetricQueries:
    """The value and requests queries that measure `spec` for the subset in `ctx`.

    Raises InputError when a context value is not a safe label value or duration: every
    value is checked, including those this provider does not use, so a bad target is
    rejected the same way whatever the policy.
    """
    check_context(ctx)
    match spec:
        case IstioMetric():
            return istio.render(spec, ctx)
        case CelloMetric():
            return cello.render(spec, ctx)
        case PromqlMetric():
            return render_user_queries(spec.query, spec.requests_query, ctx)


def check_context(ctx: QueryContext) -> None:
    """Raise InputError unless every value of `ctx` is safe to paste into PromQL."""
    check_label_value("namespace", ctx.namespace)
    check_label_value("service", ctx.service)
    check_label_value("version", ctx.version)
    check_label_value("canary version", ctx.canary_version)
    check_label_value("stable version", ctx.stable_version)
    check_duration("window", ctx.window)


def query_context(
    role: Role,
    *,
    namespace: str,
    service: str,
    canary_version: str,
    stable_version: str,
    window: timedelta,
) -> QueryContext:
    """The context that selects the `role` subset, every value checked up front."""
    ctx = QueryContext(
        namespace=namespace,
        service=service,
        version=canary_version if role is Role.CANARY else stable_version,
        canary_version=canary_version,
        stable_version=stable_version,
        window=format_duration(window),
    )
    check_context(ctx)
    return ctx


def render_both(
    spec: AnyMetric,
    *,
    namespace: str,
    service: str,
    canary_version: str,
    stable_version: str,
    window: timedelta,
) -> dict[Role, MetricQueries]:
    """The queries of `spec` for canary and for stable, over the same window."""
    return {
        role: render_queries(
            spec,
            query_context(
                role,
                namespace=namespace,
                service=service,
                canary_version=canary_version,
                stable_version=stable_version,
                window=window,
            ),
        )
        for role in Role
    }


# The target `rollout validate` renders queries for: no cluster is consulted, so the values
# are stand-ins, and the output says so.
SAMPLE_TARGET = {
    "namespace": "default",
    "service": "example",
    "stable_version": "v1",
    "canary_version": "v2",
}


def sample_queries(spec: PolicySpec) -> list[tuple[str, dict[Role, MetricQueries]]]:
    """Every query a policy runs, rendered for SAMPLE_TARGET: each metric over the policy's
    window, then each guard limit over the guard's window (labelled `guard <metric>`)."""
    rendered = [
        (metric.name, render_both(metric, window=spec.window, **SAMPLE_TARGET))
        for metric in spec.metrics
    ]
    if spec.guard is not None:
        rendered += [
            (
                f"guard {limit.metric}",
                render_both(spec.metric(limit.metric), window=spec.guard.window, **SAMPLE_TARGET),
            )
            for limit in spec.guard.metrics
        ]
    return rendered
