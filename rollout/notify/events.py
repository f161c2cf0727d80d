"""The notification event: what happened to which rollout, and the numbers that decided it.

Events are built in the driver's decision path, so building is pure and cheap; sending is
the delivery worker's job. Every sink renders the same typed event, so Slack, webhooks and
Kubernetes Events never disagree about what happened.
"""

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, get_args
from uuid import uuid4

from rollout.analysis import AnalysisReport, MetricResult
from rollout.engine import Phase, RolloutState, Transition
from rollout.judge import Verdict, json_safe
from rollout.policy import NotificationKind, PromqlMetric

KINDS: tuple[NotificationKind, ...] = get_args(NotificationKind)
# Events a person should look at; the rest are progress reports.
WARNINGS: frozenset[NotificationKind] = frozenset(
    {"checkFailed", "inconclusive", "paused", "rolledBack", "failed"}
)
# Promoting and RollingBack are not announced: Succeeded or RolledBack follows as soon as
# the weight is written, and a failed write is announced as `failed`.
_PHASE_KINDS: dict[Phase, NotificationKind] = {
    Phase.PAUSED: "paused",
    Phase.SUCCEEDED: "promoted",
    Phase.ROLLED_BACK: "rolledBack",
    Phase.FAILED: "failed",
}


@dataclass(frozen=True)
class InvolvedObject:
    """The Kubernetes object a rollout is about: its CanaryRollout, or the VirtualService of a
    standalone run. Kubernetes Events attach to it; CloudEvents name it as their source."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @property
    def path(self) -> str:
        """The object's API path, a stable URI-reference for CloudEvents' `source`."""
        return (
            f"/apis/{self.api_version}/namespaces/{self.namespace}/{self.kind.lower()}s/{self.name}"
        )


@dataclass(frozen=True)
class Where:
    """Everything about a rollout that does not change while it runs."""

    rollout: InvolvedObject
    virtual_service: str
    stable: str
    canary: str
    steps: int


@dataclass(frozen=True)
class LimitOutcome:
    """One limit of a metric: what was compared with it, and how that came out."""

    name: str
    limit: float
    observed: float | None
    verdict: Verdict


@dataclass(frozen=True)
class MetricOutcome:
    """One metric of the analysis: values, request counts, limits and its verdict.

    `unit` says how to read the numbers: `ratio` (0-1 error rate), `ms`, or "" (PromQL).
    """

    name: str
    unit: str
    verdict: Verdict
    reason: str
    canary: float | None
    stable: float | None
    canary_requests: float | None
    stable_requests: float | None
    limits: tuple[LimitOutcome, ...]


@dataclass(frozen=True)
class Analysis:
    """The analysis behind an event: the check that decided it."""

    check: str  # "step" | "guard"
    at: datetime
    verdict: Verdict
    reason: str
    window: str
    metrics: tuple[MetricOutcome, ...]


@dataclass(frozen=True)
class NotificationEvent:
    """One thing that happened to one rollout. `id` is fixed at creation, so every retry of
    a delivery carries the same id and receivers can drop duplicates."""

    kind: NotificationKind
    at: datetime
    where: Where
    phase: str
    step: int  # 1-based, as people count; 0 before the first step
    weight: int
    reason: str
    analysis: Analysis | None
    id: str = field(default_factory=lambda: str(uuid4()))

    @property
    def warning(self) -> bool:
        """True when a person should look (a failed check, a rollback, ...)."""
        return self.kind in WARNINGS

    @property
    def verdict(self) -> Verdict | None:
        """The verdict of the deciding analysis, if there was one."""
        return self.analysis.verdict if self.analysis is not None else None

    def to_data(self) -> dict[str, Any]:
        """The event as JSON-safe data (NaN and infinities become null)."""
        data: dict[str, Any] = json_safe(asdict(self))
        data["at"] = self.at.isoformat()
        if self.analysis is not None:
            data["analysis"]["at"] = self.analysis.at.isoformat()
        return data


def headline(event: NotificationEvent) -> str:
    """One line saying what happened where, e.g. `promoted: demo/cello-app (v1 -> v2) at 100%`."""
    where = event.where
    what = _WORDS[event.kind]
    return (
        f"{what}: {where.rollout.namespace}/{where.rollout.name} ({where.stable} -> "
        f"{where.canary}) at {event.weight}%, step {event.step}/{where.steps}"
    )


_WORDS: dict[NotificationKind, str] = {
    "started": "Rollout started",
    "stepAdvanced": "Step advanced",
    "checkFailed": "Check failed",
    "inconclusive": "Check inconclusive",
    "paused": "Rollout paused",
    "waitingForApproval": "Waiting for approval",
    "promoted": "Promoted",
    "rolledBack": "Rolled back",
    "failed": "Failed to act",
}


def kind_of(transition: Transition, state: RolloutState) -> NotificationKind | None:
    """Which event a transition is, given the state after it (None: not announced)."""
    if transition.phase is not Phase.PROGRESSING:
        return _PHASE_KINDS.get(transition.phase)
    if state.awaiting is not None:
        return "waitingForApproval"
    previous = _previous(transition, state)
    if previous is None or previous.step < 0:
        return "started"
    return "stepAdvanced" if transition.step > previous.step else None


def _previous(transition: Transition, state: RolloutState) -> Transition | None:
    """The transition before `transition` in the state's history."""
    history = state.history
    if transition not in history:
        return history[-1] if history else None
    index = history.index(transition)
    return history[index - 1] if index > 0 else None


def from_transition(
    transition: Transition, state: RolloutState, where: Where, deciding: Analysis | None
) -> NotificationEvent | None:
    """The event a transition announces, or None when it announces none."""
    kind = kind_of(transition, state)
    if kind is None:
        return None
    reason = transition.reason
    previous = _previous(transition, state)
    if kind == "promoted" and previous is not None and previous.phase is Phase.PROMOTING:
        reason = previous.reason  # why it was promoted, not just "promoted"
    return NotificationEvent(
        kind=kind,
        at=transition.at,
        where=where,
        phase=str(transition.phase),
        step=transition.step + 1,
        weight=transition.weight,
        reason=reason,
        analysis=deciding,
    )


def from_check(analysis: Analysis, state: RolloutState, where: Where) -> NotificationEvent | None:
    """A failed or inconclusive analysis as an event (a pass is told by `stepAdvanced`)."""
    if analysis.verdict is Verdict.PASS:
        return None
    kind: NotificationKind = "checkFailed" if analysis.verdict is Verdict.FAIL else "inconclusive"
    return NotificationEvent(
        kind=kind,
        at=analysis.at,
        where=where,
        phase=str(state.phase),
        step=state.step + 1,
        weight=state.weight,
        reason=analysis.reason,
        analysis=analysis,
    )


def analysis_of(check: str, report: AnalysisReport) -> Analysis:
    """The parts of an analysis report a notification carries."""
    return Analysis(
        check=check,
        at=report.at,
        verdict=report.check.verdict,
        reason=report.check.reason,
        window=report.window,
        metrics=tuple(_metric(result) for result in report.results),
    )


def _metric(result: MetricResult) -> MetricOutcome:
    spec, verdict = result.spec, result.verdict
    unit = "" if isinstance(spec, PromqlMetric) else "ratio" if spec.kind == "errorRate" else "ms"
    return MetricOutcome(
        name=verdict.metric,
        unit=unit,
        verdict=verdict.verdict,
        reason=verdict.reason,
        canary=verdict.canary,
        stable=verdict.stable,
        canary_requests=verdict.canary_requests,
        stable_requests=verdict.stable_requests,
        limits=tuple(
            LimitOutcome(limit.name, limit.limit, limit.observed, limit.verdict)
            for limit in verdict.limits
        ),
    )
