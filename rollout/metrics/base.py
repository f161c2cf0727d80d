"""Types shared by the metric providers, the Prometheus reader and the judge."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    """Which side of the split a measurement is about."""

    CANARY = "canary"
    STABLE = "stable"


@dataclass(frozen=True)
class QueryContext:
    """What a provider needs to select one subset's series.

    `version` is the value of the subset's version label (from the DestinationRule, or
    --canary-version/--stable-version), for the subset being measured; `canary_version` and
    `stable_version` are both, for `promql` templates that want either. `window` is a PromQL
    duration such as "1m". All values are validated before they reach a query.
    """

    namespace: str
    service: str
    version: str
    canary_version: str
    stable_version: str
    window: str


@dataclass(frozen=True)
class MetricQueries:
    """The PromQL that measures one metric for one subset.

    `value` yields the metric (an error ratio, a latency in ms, ...); `requests` yields the
    number of requests the value rests on, in the same window and selection.
    """

    value: str
    requests: str


@dataclass(frozen=True)
class Measurement:
    """One metric of one subset, read from Prometheus at `at`.

    `value`/`requests` are None when there was no data or the query failed; `error` says why.
    """

    metric: str
    role: Role
    value: float | None
    requests: float | None
    queries: MetricQueries
    at: datetime
    error: str | None = None
