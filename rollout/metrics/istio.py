"""The `istio` provider: Istio's standard request metrics, as the destination reports them.

Selected by `destination_workload_namespace`, `destination_service_name` and
`destination_version` (the subset's version label value); latency is already in ms.
"""

from rollout.metrics.base import MetricQueries, QueryContext
from rollout.metrics.labels import matcher
from rollout.metrics.promql import RequestSeries, request_metric_queries
from rollout.policy import IstioMetric

SERIES = RequestSeries(
    requests_total="istio_requests_total",
    status_label="response_code",
    duration_bucket="istio_request_duration_milliseconds_bucket",
)


def render(spec: IstioMetric, ctx: QueryContext) -> MetricQueries:
    """The queries measuring `spec` for the subset `ctx.version`."""
    matchers = [
        'reporter="destination"',
        matcher("destination_workload_namespace", ctx.namespace, "namespace"),
        matcher("destination_service_name", ctx.service, "service"),
        matcher("destination_version", ctx.version, "version"),
    ]
    return request_metric_queries(SERIES, matchers, spec.kind, ctx.window, spec.quantile)
