"""The judge's verdict table: pass, fail (absolute, relative), and every inconclusive cause."""

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest

from rollout.judge import Verdict, judge_check, judge_guard, judge_metric
from rollout.metrics.base import Measurement, MetricQueries, Role
from rollout.policy import GuardLimit, IstioMetric

AT = datetime(2026, 1, 1, tzinfo=UTC)
MIN = 100


def measure(
    role: Role, value: float | None, requests: float | None = 1000, error: str | None = None
) -> Measurement:
    return Measurement(
        metric="errors",
        role=role,
        value=value,
        requests=requests,
        queries=MetricQueries(value=f"value-{role}", requests=f"requests-{role}"),
        at=AT,
        error=error,
    )


def metric(**limits: Any) -> IstioMetric:
    return IstioMetric.model_validate(
        {"name": "errors", "provider": "istio", "kind": "errorRate", **limits}
    )


ALL = metric(max=0.05, maxIncrease=0.01, maxRatio=2)


def judge(spec: IstioMetric, canary: Measurement, stable: Measurement) -> Any:
    return judge_metric(spec, canary, stable, MIN)


def test_pass_when_every_limit_holds() -> None:
    result = judge(ALL, measure(Role.CANARY, 0.01), measure(Role.STABLE, 0.008))
    assert result.verdict is Verdict.PASS
    assert [r.verdict for r in result.limits] == [Verdict.PASS] * 3
    assert (result.canary, result.stable) == (0.01, 0.008)
    assert (result.canary_requests, result.stable_requests, result.min_requests) == (
        1000,
        1000,
        MIN,
    )
    assert (result.canary_query, result.stable_query) == ("value-canary", "value-stable")


def test_fail_on_absolute_limit() -> None:
    result = judge(metric(max=0.05), measure(Role.CANARY, 0.2), measure(Role.STABLE, 0.0))
    assert result.verdict is Verdict.FAIL
    assert "max: canary 0.2 > 0.05" in result.reason


def test_absolute_breach_fails_even_with_unreadable_stable() -> None:
    result = judge(ALL, measure(Role.CANARY, 0.2), measure(Role.STABLE, None))
    assert result.verdict is Verdict.FAIL
    assert [r.verdict for r in result.limits] == [
        Verdict.FAIL,
        Verdict.INCONCLUSIVE,
        Verdict.INCONCLUSIVE,
    ]


def test_fail_on_increase_over_stable() -> None:
    spec = metric(max=0.5, maxIncrease=0.01)
    result = judge(spec, measure(Role.CANARY, 0.04), measure(Role.STABLE, 0.01))
    assert result.verdict is Verdict.FAIL
    increase = result.limits[1]
    assert increase.name == "maxIncrease"
    assert increase.observed == pytest.approx(0.03)
    assert "canary - stable" in increase.reason


def test_fail_on_ratio_to_stable() -> None:
    result = judge(metric(maxRatio=1.5), measure(Role.CANARY, 300), measure(Role.STABLE, 100))
    assert result.verdict is Verdict.FAIL
    assert result.limits[0].observed == 3


@pytest.mark.parametrize(
    ("canary", "stable", "verdict"),
    [(0.0, 0.0, Verdict.PASS), (0.001, 0.0, Verdict.FAIL)],
)
def test_ratio_against_a_zero_stable(canary: float, stable: float, verdict: Verdict) -> None:
    result = judge(metric(maxRatio=2), measure(Role.CANARY, canary), measure(Role.STABLE, stable))
    assert result.verdict is verdict


BAD_MEASUREMENTS = [
    ("too-few-requests", {"value": 0.0, "requests": 99}, "99 requests, fewer than the minimum 100"),
    ("no-data", {"value": None}, "no data for the value"),
    ("no-request-count", {"value": 0.0, "requests": None}, "no data for the request count"),
    ("nan", {"value": math.nan}, "value is NaN"),
    ("nan-requests", {"value": 0.0, "requests": math.nan}, "request count is NaN"),
    ("inf", {"value": math.inf}, "value is +inf"),
    ("minus-inf", {"value": -math.inf}, "value is -inf"),
    ("negative", {"value": -0.5}, "value is negative (-0.5)"),
    ("negative-requests", {"value": 0.0, "requests": -3}, "request count is negative (-3)"),
    ("query-error", {"value": None, "requests": None, "error": "timeout"}, "query error: timeout"),
]


@pytest.mark.parametrize(
    ("case", "fields", "reason"), BAD_MEASUREMENTS, ids=[b[0] for b in BAD_MEASUREMENTS]
)
def test_bad_canary_is_inconclusive_never_pass(
    case: str, fields: dict[str, Any], reason: str
) -> None:
    result = judge(ALL, measure(Role.CANARY, **fields), measure(Role.STABLE, 0.0))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reason == f"canary: {reason}"
    assert all(r.verdict is Verdict.INCONCLUSIVE for r in result.limits)


@pytest.mark.parametrize(
    ("case", "fields", "reason"), BAD_MEASUREMENTS, ids=[b[0] for b in BAD_MEASUREMENTS]
)
def test_relative_limit_with_bad_stable_is_inconclusive(
    case: str, fields: dict[str, Any], reason: str
) -> None:
    result = judge(ALL, measure(Role.CANARY, 0.0), measure(Role.STABLE, **fields))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert [r.verdict for r in result.limits] == [
        Verdict.PASS,
        Verdict.INCONCLUSIVE,
        Verdict.INCONCLUSIVE,
    ]
    assert result.reason == f"stable: {reason}"


def test_absolute_only_metric_ignores_stable() -> None:
    result = judge(metric(max=0.05), measure(Role.CANARY, 0.0), measure(Role.STABLE, None))
    assert result.verdict is Verdict.PASS


def test_exactly_min_requests_is_enough() -> None:
    result = judge(ALL, measure(Role.CANARY, 0.0, MIN), measure(Role.STABLE, 0.0, MIN))
    assert result.verdict is Verdict.PASS


def verdict_of(verdict: Verdict) -> Any:
    canary = {Verdict.PASS: 0.0, Verdict.FAIL: 0.9, Verdict.INCONCLUSIVE: None}[verdict]
    return judge(metric(max=0.05), measure(Role.CANARY, canary), measure(Role.STABLE, 0.0))


@pytest.mark.parametrize(
    ("verdicts", "overall"),
    [
        ([Verdict.PASS, Verdict.PASS], Verdict.PASS),
        ([Verdict.PASS, Verdict.INCONCLUSIVE], Verdict.INCONCLUSIVE),
        ([Verdict.INCONCLUSIVE, Verdict.FAIL], Verdict.FAIL),
        ([Verdict.PASS, Verdict.FAIL], Verdict.FAIL),
        ([], Verdict.INCONCLUSIVE),
    ],
)
def test_check_combines_metrics(verdicts: list[Verdict], overall: Verdict) -> None:
    check = judge_check([verdict_of(v) for v in verdicts])
    assert check.verdict is overall
    assert check.reason


def test_guard_uses_its_own_ceilings_and_minimum() -> None:
    guard = GuardLimit.model_validate({"metric": "errors", "max": 0.2})
    canary = measure(Role.CANARY, 0.3, requests=25)
    assert judge_guard(guard, canary, measure(Role.STABLE, 0.0), 20).verdict is Verdict.FAIL
    assert judge_guard(guard, canary, measure(Role.STABLE, 0.0), 50).verdict is (
        Verdict.INCONCLUSIVE
    )
    healthy = measure(Role.CANARY, 0.1, requests=25)
    assert judge_guard(guard, healthy, measure(Role.STABLE, 0.0), 20).verdict is Verdict.PASS


def test_verdicts_serialise_to_strict_json() -> None:
    nan = judge(ALL, measure(Role.CANARY, math.nan), measure(Role.STABLE, 0.0))
    check = judge_check([nan, verdict_of(Verdict.PASS)])
    text = json.dumps(check.to_dict(), allow_nan=False)
    data = json.loads(text)
    assert data["verdict"] == "inconclusive"
    assert data["metrics"][0]["canary"] is None
    assert "NaN" in data["metrics"][0]["reason"]
    assert data["metrics"][0]["limits"][0]["name"] == "max"
