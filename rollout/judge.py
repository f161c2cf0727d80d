"""The judge: canary and stable measurements in, a verdict with its reason out. Pure.

`inconclusive` is a verdict of its own, never folded into `pass`: a measurement on too few
requests, with no data, NaN, ±Inf, a negative value or a query error says nothing about
the canary's health (peers.md: Flagger fails idle canaries, Argo aborts them; we do
neither, the policy decides what repeated inconclusive checks do).
"""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from rollout.metrics.base import Measurement
from rollout.policy import GuardLimit, Limits, MetricBase


class Verdict(StrEnum):
    """The outcome of one limit, one metric or one whole check."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class LimitResult:
    """One limit of a metric: `observed` is what was compared with `limit`.

    `observed` is the canary value for `max`, canary - stable for `maxIncrease` and
    canary / stable for `maxRatio` (None when it could not be computed).
    """

    name: str
    limit: float
    observed: float | None
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class MetricVerdict:
    """The verdict on one metric, with the numbers and queries it rests on."""

    metric: str
    verdict: Verdict
    reason: str
    canary: float | None
    stable: float | None
    canary_requests: float | None
    stable_requests: float | None
    min_requests: int
    limits: tuple[LimitResult, ...]
    canary_query: str
    stable_query: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict: NaN and ±Inf become None (the reason still names them)."""
        result: dict[str, Any] = json_safe(asdict(self))
        return result


@dataclass(frozen=True)
class CheckVerdict:
    """The verdict on one analysis: any fail fails it, else any inconclusive, else pass."""

    verdict: Verdict
    reason: str
    metrics: tuple[MetricVerdict, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the check and every metric in it."""
        result: dict[str, Any] = json_safe(asdict(self))
        return result


def json_safe(value: Any) -> Any:
    """`value` with NaN and ±Inf replaced by None, recursively: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def unusable(measurement: Measurement, min_requests: int) -> str | None:
    """Why a measurement cannot be judged, or None when it can."""
    if measurement.error is not None:
        return f"query error: {measurement.error}"
    problem = _bad_number("value", measurement.value) or _bad_number(
        "request count", measurement.requests
    )
    if problem or measurement.requests is None:
        return problem
    if measurement.requests < min_requests:
        return f"{measurement.requests:g} requests, fewer than the minimum {min_requests}"
    return None


def _bad_number(what: str, value: float | None) -> str | None:
    if value is None:
        return f"no data for the {what}"
    if math.isnan(value):
        return f"{what} is NaN"
    if math.isinf(value):
        return f"{what} is {value:+}"
    if value < 0:
        return f"{what} is negative ({value:g})"
    return None


def judge_limits(
    name: str,
    limits: Limits,
    canary: Measurement,
    stable: Measurement,
    min_requests: int,
) -> MetricVerdict:
    """Judge `limits` on one metric's canary and stable measurements of the same window.

    An absolute breach fails even when the stable side is unreadable; a relative limit
    with an unreadable stable side is inconclusive, never passed.
    """
    canary_problem = unusable(canary, min_requests)
    stable_problem = unusable(stable, min_requests)
    results = tuple(
        _judge_one(limit_name, value, canary, stable, canary_problem, stable_problem)
        for limit_name, value in (
            ("max", limits.max),
            ("maxIncrease", limits.max_increase),
            ("maxRatio", limits.max_ratio),
        )
        if value is not None
    )
    verdict, reason = _combine([(r.verdict, _labelled(r)) for r in results])
    return MetricVerdict(
        metric=name,
        verdict=verdict,
        reason=reason,
        canary=canary.value,
        stable=stable.value,
        canary_requests=canary.requests,
        stable_requests=stable.requests,
        min_requests=min_requests,
        limits=results,
        canary_query=canary.queries.value,
        stable_query=stable.queries.value,
    )


def _judge_one(
    name: str,
    limit: float,
    canary: Measurement,
    stable: Measurement,
    canary_problem: str | None,
    stable_problem: str | None,
) -> LimitResult:
    """One limit: check both sides are readable as needed, compute, compare."""
    if canary_problem or canary.value is None:
        return LimitResult(name, limit, None, Verdict.INCONCLUSIVE, f"canary: {canary_problem}")
    if name == "max":
        observed, what = canary.value, "canary"
    elif stable_problem or stable.value is None:
        return LimitResult(name, limit, None, Verdict.INCONCLUSIVE, f"stable: {stable_problem}")
    else:
        observed, what = _relative(name, canary.value, stable.value)
    if observed > limit:
        return LimitResult(name, limit, observed, Verdict.FAIL, f"{what} {observed:g} > {limit:g}")
    return LimitResult(name, limit, observed, Verdict.PASS, f"{what} {observed:g} <= {limit:g}")


def _relative(name: str, canary: float, stable: float) -> tuple[float, str]:
    """canary - stable for maxIncrease; canary / stable for maxRatio, where a stable 0 makes
    any positive canary infinitely worse (it fails) and 0 / 0 equal (ratio 0, passes)."""
    if name == "maxIncrease":
        return canary - stable, "canary - stable"
    if stable == 0:
        return (0.0 if canary == 0 else math.inf), "canary / stable"
    return canary / stable, "canary / stable"


def _labelled(result: LimitResult) -> str:
    """A limit's reason for the metric's summary. An inconclusive one is about a side
    (canary or stable), shared by every limit that needs it, so it is not per limit."""
    if result.verdict is Verdict.INCONCLUSIVE:
        return result.reason
    return f"{result.name}: {result.reason}"


def _combine(parts: Sequence[tuple[Verdict, str]]) -> tuple[Verdict, str]:
    """Any fail → fail; else any inconclusive → inconclusive; else pass. The distinct
    reasons of the deciding verdict are joined; nothing judged at all is inconclusive."""
    for verdict in (Verdict.FAIL, Verdict.INCONCLUSIVE):
        reasons = list(dict.fromkeys(reason for v, reason in parts if v is verdict))
        if reasons:
            return verdict, "; ".join(reasons)
    if not parts:
        return Verdict.INCONCLUSIVE, "nothing was judged"
    return Verdict.PASS, "; ".join(reason for _, reason in parts)


def judge_metric(
    spec: MetricBase, canary: Measurement, stable: Measurement, min_requests: int
) -> MetricVerdict:
    """The verdict on one policy metric (its own limits) for one analysis."""
    return judge_limits(spec.name, spec, canary, stable, min_requests)


def judge_guard(
    limit: GuardLimit, canary: Measurement, stable: Measurement, min_requests: int
) -> MetricVerdict:
    """The verdict on one guard ceiling; only a `fail` acts (an immediate rollback)."""
    return judge_limits(limit.metric, limit, canary, stable, min_requests)


def judge_check(metrics: Sequence[MetricVerdict]) -> CheckVerdict:
    """The verdict on a whole analysis (or a guard round) from its metric verdicts."""
    verdict, _ = _combine([(m.verdict, m.metric) for m in metrics])
    deciding = [m for m in metrics if m.verdict is verdict]
    reason = "; ".join(f"{m.metric}: {m.reason}" for m in deciding) or "no metrics"
    return CheckVerdict(verdict=verdict, reason=reason, metrics=tuple(metrics))
