"""Drives one rollout: feeds events to the pure engine and carries out the actions it returns.

The engine decides; this module acts. For every event:
1. the engine returns the next state and its actions;
2. the state is saved first (so a process killed right after acting resumes at the step it
   acted on, never at an earlier weight);
3. the actions are performed: weights through the router, analyses through Prometheus,
   transitions to the log and the decision record.
Results of actions become events in turn: a written weight is `Converged`, a failed write
or an unreachable Prometheus is `ActionFailed`, an analysis is `AnalysisDone`.

One lock serialises decisions; analyses run outside it, so the guard job can keep acting
while a slow step analysis is in flight.
"""

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import structlog

from rollout.analysis import AnalysisReport, analyze, analyze_guard
from rollout.engine import (
    ActionFailed,
    AnalysisDone,
    Analyze,
    Announce,
    Command,
    Converged,
    Event,
    GuardBreached,
    Phase,
    Plan,
    RolloutState,
    SetWeight,
    Tick,
    Transition,
    decide,
)
from rollout.errors import ExitCode, RolloutError
from rollout.gates import UrlGate
from rollout.judge import Verdict
from rollout.metrics.prometheus import PrometheusReader
from rollout.policy import RolloutPolicy
from rollout.subsets import Subject
from rollout.target import Target
from rollout.traffic.istio import IstioRouter

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The wall clock, in UTC (the default clock of a driver)."""
    return datetime.now(UTC)


class StateStore(Protocol):
    """Where the driver saves state after each decision (VS annotation, CanaryRollout status)."""

    def save(self, state: RolloutState, now: datetime) -> Sequence[Command]:
        """Store `state` (renewing any lock); return the commands people sent meanwhile."""


def plan_of(policy: RolloutPolicy) -> Plan:
    """The parts of a policy the engine decides with."""
    spec = policy.spec
    return Plan(
        weights=tuple(spec.weights),
        interval=spec.interval,
        failure_limit=spec.failure_limit,
        inconclusive_limit=spec.inconclusive.limit,
        inconclusive_action=spec.inconclusive.action,
        confirm_step=spec.gates is not None and spec.gates.confirm_step is not None,
        confirm_promotion=spec.gates is not None and spec.gates.confirm_promotion is not None,
    )


@dataclass(frozen=True)
class CheckRecord:
    """One analysis in the decision record: when, at which step and weight, and its report."""

    kind: Literal["step", "guard"]
    step: int
    weight: int
    report: AnalysisReport
    seconds: float = 0.0  # how long the analysis took (the controller's duration metric)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "step": self.step, "weight": self.weight} | (
            self.report.to_dict()
        )


class Notifier(Protocol):
    """Tells people about transitions and checks (rollout.notify). Its methods only queue:
    they are called under the decision lock and must never block or raise."""

    def transition(self, transition: Transition, state: RolloutState) -> None:
        """An announced transition; `state` is the state after it."""

    def checked(self, check: CheckRecord, state: RolloutState) -> None:
        """A finished analysis (step or guard), whatever its verdict."""


@dataclass
class DecisionRecord:
    """Every check and transition of a run: the evidence behind its verdict."""

    checks: list[CheckRecord] = field(default_factory=list)


def exit_code(state: RolloutState) -> ExitCode:
    """What `rollout run` exits with for a finished (or paused) rollout."""
    if state.aborted or state.phase is Phase.PAUSED:
        return ExitCode.ABORTED
    if state.phase is Phase.SUCCEEDED:
        return ExitCode.OK
    if state.phase is Phase.ROLLED_BACK:
        return ExitCode.ROLLED_BACK
    return ExitCode.INCOMPLETE


class Driver:
    """Applies events to one rollout's state and performs the resulting actions."""

    def __init__(
        self,
        *,
        policy: RolloutPolicy,
        target: Target,
        subject: Subject,
        router: IstioRouter,
        reader: PrometheusReader,
        store: StateStore,
        state: RolloutState,
        clock: Clock = utcnow,
        notifier: Notifier | None = None,
        gates: Mapping[str, UrlGate] | None = None,
    ) -> None:
        self.policy = policy
        self.plan = plan_of(policy)
        self.target = target
        self.subject = subject
        self.state = state
        self.record = DecisionRecord()
        self._router = router
        self._reader = reader
        self._store = store
        self._clock = clock
        self._notifier = notifier
        self._gates = gates or {}
        self._lock = threading.Lock()
        self._analysing = False  # one step analysis at a time, whichever job asked first
        self._listeners: list[Callable[[RolloutState], None]] = []
        self._log = structlog.get_logger(__name__).bind(
            namespace=target.namespace, virtual_service=target.virtual_service
        )

    def on_change(self, listener: Callable[[RolloutState], None]) -> None:
        """Call `listener` with the new state after every decision (scheduler, live view)."""
        self._listeners.append(listener)

    def handle(self, event: Event) -> RolloutState:
        """Apply `event` and everything that follows from it; return the resulting state."""
        pending: list[Event] = [event]
        while pending:
            current = pending.pop(0)
            analyse = self._decide_and_act(current, pending)
            if analyse:
                try:
                    pending.append(self._analyse())
                finally:
                    self._analysing = False
        return self.state

    def tick(self) -> RolloutState:
        """The step job: re-assert the weight and analyse if the step is due."""
        return self.handle(Tick(self._clock()))

    def guard(self) -> RolloutState:
        """The guard job: re-assert the weight, ask a URL gate the rollout waits at, then
        check the guard limits between steps."""
        self._renew()
        state = self.handle(Tick(self._clock()))
        gate = self._gates.get(state.awaiting or "")
        if state.phase is Phase.PROGRESSING and gate is not None and gate.open():
            state = self.handle(Command(self._clock(), "approve", by="url", step=state.step))
        if state.phase is not Phase.PROGRESSING or self.policy.spec.guard is None:
            return state
        try:
            report = analyze_guard(self.policy, self.subject, self._reader, self._clock())
        except RolloutError as exc:
            return self.handle(ActionFailed(self._clock(), str(exc)))
        self._record(CheckRecord("guard", state.step, state.weight, report))
        if report.check.verdict is Verdict.FAIL:
            return self.handle(GuardBreached(report.at, report.check.reason))
        return self.state

    def next_due(self) -> datetime | None:
        """When the current step's analysis is due (None when no analysis is pending)."""
        state = self.state
        if state.phase is not Phase.PROGRESSING or state.step_started is None:
            return None
        return state.step_started + self.plan.interval

    def _decide_and_act(self, event: Event, pending: list[Event]) -> bool:
        """One decision under the lock; returns whether an analysis was asked for."""
        with self._lock:
            before = self.state
            decision = decide(before, event, self.plan)
            self.state = decision.state
            if decision.state != before:
                self._save(pending)
            analyse = False
            for action in decision.actions:
                match action:
                    case SetWeight(canary=weight):
                        pending.extend(self._set_weight(weight))
                    case Announce(transition=transition):
                        self._log.info(
                            "rollout.transition",
                            phase=str(transition.phase),
                            step=transition.step,
                            weight=transition.weight,
                            reason=transition.reason,
                        )
                        if self._notifier is not None:
                            self._notifier.transition(transition, self.state)
                    case Analyze() if not self._analysing:
                        self._analysing = analyse = True
        if self.state != before:
            self._notify()
        return analyse

    def _record(self, check: CheckRecord) -> None:
        """Keep a check in the decision record and tell the notifier of it."""
        self.record.checks.append(check)
        if self._notifier is not None:
            self._notifier.checked(check, self.state)

    def _renew(self) -> None:
        """Save even when nothing changed: renews the lock and collects people's commands."""
        pending: list[Event] = []
        with self._lock:
            self._save(pending)
        for event in pending:
            self.handle(event)

    def _notify(self) -> None:
        for listener in self._listeners:
            listener(self.state)

    def _save(self, pending: list[Event]) -> None:
        """Save the state (call under the lock); people's commands join `pending`."""
        try:
            commands = self._store.save(self.state, self._clock())
        except RolloutError as exc:
            self._log.error("rollout.save_failed", error=str(exc))
            pending.append(ActionFailed(self._clock(), f"could not save state: {exc}"))
            return
        for command in commands:
            self._log.info("rollout.command", command=command.name, by=command.by)
        pending.extend(commands)

    def _set_weight(self, weight: int) -> list[Event]:
        try:
            self._router.set_canary_weight(self.target, weight)
        except RolloutError as exc:
            self._log.error("traffic.write_failed", canary=weight, error=str(exc))
            return [ActionFailed(self._clock(), str(exc))]
        return [Converged(self._clock())]

    def _analyse(self) -> Event:
        """Run the step's analysis; an unreachable Prometheus is a failure to act."""
        state = self.state
        due = self.next_due()
        now = self._clock()
        if due is not None:
            lag = (now - due).total_seconds()
            self._log.info("step.analysis_started", step=state.step, weight=state.weight, lag=lag)
        started = time.monotonic()
        try:
            report = analyze(self.policy, self.subject, self._reader, now)
        except RolloutError as exc:
            return ActionFailed(self._clock(), str(exc))
        seconds = time.monotonic() - started
        self._record(CheckRecord("step", state.step, state.weight, report, seconds))
        check = report.check
        return AnalysisDone(report.at, check.verdict, check.reason, started=state.step_started)


def lease_renewal_interval(policy: RolloutPolicy) -> timedelta:
    """How often the guard job runs (and so renews the lock): the guard's interval or 5 s."""
    guard = policy.spec.guard
    return guard.interval if guard is not None else timedelta(seconds=5)
