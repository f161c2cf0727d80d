"""One analysis: a policy and a subject in, every metric measured for canary and stable over
the same window, judged, and reported.

This is what `rollout analyze` prints and what each step of a rollout will run. All queries
are evaluated at one instant `at`, so the stable baseline is the same window as the canary.
The report keeps everything a person needs to check a verdict by hand: the values, request
counts, limits and the exact PromQL.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from rich.table import Table

from rollout.errors import ExitCode
from rollout.judge import (
    CheckVerdict,
    LimitResult,
    MetricVerdict,
    Verdict,
    judge_check,
    judge_guard,
    judge_metric,
)
from rollout.metrics.base import Measurement, Role
from rollout.metrics.labels import format_duration
from rollout.metrics.prometheus import PrometheusReader
from rollout.metrics.providers import render_both
from rollout.policy import CelloMetric, IstioMetric, PromqlMetric, RolloutPolicy
from rollout.subsets import Subject

log = structlog.get_logger(__name__)

MetricSpec = IstioMetric | CelloMetric | PromqlMetric
EXIT_CODES = {
    Verdict.PASS: ExitCode.OK,
    Verdict.FAIL: ExitCode.ROLLED_BACK,
    Verdict.INCONCLUSIVE: ExitCode.INCOMPLETE,
}


@dataclass(frozen=True)
class MetricResult:
    """One metric's spec, both measurements and the judge's verdict on them."""

    spec: MetricSpec
    canary: Measurement
    stable: Measurement
    verdict: MetricVerdict

    def to_dict(self) -> dict[str, Any]:
        """The verdict's fields plus what was measured how: kind, both subsets' PromQL."""
        kind = None if isinstance(self.spec, PromqlMetric) else self.spec.kind
        return self.verdict.to_dict() | {
            "provider": self.spec.provider,
            "kind": kind,
            "canary_error": self.canary.error,
            "stable_error": self.stable.error,
            "queries": {
                str(m.role): {"value": m.queries.value, "requests": m.queries.requests}
                for m in (self.canary, self.stable)
            },
        }


@dataclass(frozen=True)
class AnalysisReport:
    """The outcome of one analysis."""

    policy: str
    subject: Subject
    window: str
    at: datetime
    check: CheckVerdict
    results: tuple[MetricResult, ...]

    @property
    def exit_code(self) -> ExitCode:
        """0 pass, 1 fail, 3 inconclusive (DESIGN, "Command line")."""
        return EXIT_CODES[self.check.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": str(self.check.verdict),
            "reason": self.check.reason,
            "at": self.at.isoformat(),
            "policy": self.policy,
            "namespace": self.subject.namespace,
            "service": self.subject.service,
            "canary_version": self.subject.canary_version,
            "stable_version": self.subject.stable_version,
            "window": self.window,
            "metrics": [result.to_dict() for result in self.results],
        }


def analyze(
    policy: RolloutPolicy, subject: Subject, reader: PrometheusReader, at: datetime | None = None
) -> AnalysisReport:
    """Measure every metric of `policy` for both subsets at `at` (default now) and judge."""
    at = at or datetime.now(UTC)
    spec = policy.spec
    results = []
    for metric in spec.metrics:
        canary, stable = _measure(metric, subject, reader, spec.window, at)
        verdict = judge_metric(metric, canary, stable, spec.min_requests)
        results.append(MetricResult(metric, canary, stable, verdict))
    return _report(policy, subject, spec.window, at, results, "analysis.done")


def analyze_guard(
    policy: RolloutPolicy, subject: Subject, reader: PrometheusReader, at: datetime | None = None
) -> AnalysisReport:
    """Check the policy's guard ceilings (its own window and minimum) between steps.

    Only a `fail` acts (an immediate rollback); a guard that cannot judge leaves the
    decision to the step analysis.
    """
    guard = policy.spec.guard
    if guard is None:
        raise ValueError(f"policy {policy.metadata.name} has no guard")
    at = at or datetime.now(UTC)
    results = []
    for limit in guard.metrics:
        metric = policy.spec.metric(limit.metric)
        canary, stable = _measure(metric, subject, reader, guard.window, at)
        verdict = judge_guard(limit, canary, stable, guard.min_requests)
        results.append(MetricResult(metric, canary, stable, verdict))
    return _report(policy, subject, guard.window, at, results, "guard.done")


def _report(
    policy: RolloutPolicy,
    subject: Subject,
    window: timedelta,
    at: datetime,
    results: list[MetricResult],
    event: str,
) -> AnalysisReport:
    check = judge_check([r.verdict for r in results])
    log.info(
        event,
        policy=policy.metadata.name,
        service=subject.service,
        canary=subject.canary_version,
        stable=subject.stable_version,
        verdict=str(check.verdict),
    )
    return AnalysisReport(
        policy=policy.metadata.name,
        subject=subject,
        window=format_duration(window),
        at=at,
        check=check,
        results=tuple(results),
    )


def _measure(
    metric: MetricSpec,
    subject: Subject,
    reader: PrometheusReader,
    window: timedelta,
    at: datetime,
) -> tuple[Measurement, Measurement]:
    """Both subsets' measurements of one metric over the same window at the same instant."""
    queries = render_both(
        metric,
        namespace=subject.namespace,
        service=subject.service,
        canary_version=subject.canary_version,
        stable_version=subject.stable_version,
        window=window,
    )
    return (
        reader.measure(metric.name, Role.CANARY, queries[Role.CANARY], at),
        reader.measure(metric.name, Role.STABLE, queries[Role.STABLE], at),
    )


# ---- text output ---------------------------------------------------------------------------

_STYLE = {Verdict.PASS: "green", Verdict.FAIL: "bold red", Verdict.INCONCLUSIVE: "yellow"}


def _value(spec: MetricSpec, value: float | None) -> str:
    """A value in its metric's unit: error rates in %, latencies in ms, PromQL as is."""
    if value is None:
        return "-"
    if isinstance(spec, PromqlMetric):
        return f"{value:.4g}"
    return f"{value * 100:.2f} %" if spec.kind == "errorRate" else f"{value:.1f} ms"


def _limit(spec: MetricSpec, limit: LimitResult) -> str:
    bound = f"x{limit.limit:g}" if limit.name == "maxRatio" else _value(spec, limit.limit)
    return f"{limit.name} {bound}"


def _requests(result: MetricResult) -> str:
    def count(n: float | None) -> str:
        return "-" if n is None else f"{n:.0f}"

    return f"{count(result.canary.requests)} / {count(result.stable.requests)}"


def report_table(report: AnalysisReport) -> Table:
    """The report as a table: one row per metric, the reason shown for every non-pass."""
    subject = report.subject
    table = Table(
        title=f"{subject.namespace}/{subject.service}: canary {subject.canary_version} vs "
        f"stable {subject.stable_version}, window {report.window}, policy {report.policy}",
        caption=f"{report.check.verdict.upper()} at {report.at:%Y-%m-%d %H:%M:%S} UTC",
    )
    for column in ("metric", "canary", "stable", "limit", "requests c/s", "verdict", "reason"):
        table.add_column(column, overflow="fold")
    for result in report.results:
        verdict = result.verdict
        style = _STYLE[verdict.verdict]
        table.add_row(
            result.spec.name,
            _value(result.spec, verdict.canary),
            _value(result.spec, verdict.stable),
            ", ".join(_limit(result.spec, limit) for limit in verdict.limits),
            _requests(result),
            f"[{style}]{verdict.verdict}[/]",
            "" if verdict.verdict is Verdict.PASS else verdict.reason,
        )
    return table
