"""The `cello` provider: the metrics a Cello app exports with `app.enable_prometheus()`.

Cello does not know its own version or namespace; Prometheus adds them as target labels
when it scrapes a pod, under names that depend on the scrape config, so the names come
from the policy (`labels:`). Latency comes from the seconds histogram's buckets, scaled
to milliseconds; never from `_sum`, which cello 1.4.1 has been seen to report negative.
"""

from rollout.metrics.base import MetricQueries, QueryContext
from rollout.metrics.labels import matcher
from rollout.metrics.promql import RequestSeries, request_metric_queries
from rollout.policy import CelloMetric

SERIES = RequestSeries(
    requests_total="cello_http_requests_total",
    status_label="status",
    duration_bucket="cello_http_request_duration_seconds_bucket",
    latency_scale=1000,
)


def render(spec: CelloMetric, ctx: QueryContext) -> MetricQueries:
    """The queries measuring `spec` for the subset `ctx.version`."""
    labels = spec.labels
    matchers = [
        matcher(labels.namespace, ctx.namespace, "namespace"),
        matcher(labels.version, ctx.version, "version"),
    ]
    if labels.service is not None:
        matchers.append(matcher(labels.service, ctx.service, "service"))
    return request_metric_queries(SERIES, matchers, spec.kind, ctx.window, spec.quantile)
