"""The canary state machine. Pure: (state, event, plan) → (next state, actions).

Nothing here reads a clock, Prometheus or the cluster. The scheduler feeds events (a tick,
an analysis result, a guard breach, a person's command, a failure to act) with the time
they happened; the engine answers with the next state and the actions to perform, which
routers and notifiers carry out. Because the state alone says where traffic belongs
(`desired_weight`), every tick re-asserts that weight: the engine is level-triggered, and a
restarted process that loads the stored state converges to the same place.

Phases: Pending → Progressing(step i) → Promoting → Succeeded, or → RollingBack →
RolledBack; Paused holds the current weight; Failed means we could not act, and puts
traffic on stable.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from rollout.judge import Verdict


class Phase(StrEnum):
    """Where a rollout is. The last three are terminal."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    ROLLING_BACK = "RollingBack"
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"


TERMINAL = frozenset({Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED})


class Transition(BaseModel):
    """One change of phase or step, kept in the state's history as evidence."""

    model_config = ConfigDict(frozen=True)

    at: datetime
    phase: Phase
    step: int
    weight: int
    reason: str


class RolloutState(BaseModel):
    """Everything needed to resume a rollout, and nothing that can be derived.

    `step` indexes the plan's weights (-1 before the first step); `weight` is the canary
    weight the state puts traffic at. Serialised as JSON into the store.
    """

    model_config = ConfigDict(frozen=True)

    phase: Phase = Phase.PENDING
    step: int = -1
    weight: int = 0
    step_started: datetime | None = None
    failed_checks: int = 0
    inconclusive_streak: int = 0
    aborted: bool = False
    awaiting: str | None = None  # a gate ("confirm-step"/"confirm-promotion") holding the step
    reason: str = ""
    history: tuple[Transition, ...] = Field(default_factory=tuple)

    @property
    def terminal(self) -> bool:
        """Succeeded, RolledBack or Failed: no event moves it any more."""
        return self.phase in TERMINAL


@dataclass(frozen=True)
class Plan:
    """The parts of a policy the engine decides with (kept small so the engine is pure)."""

    weights: tuple[int, ...]
    interval: timedelta
    failure_limit: int
    inconclusive_limit: int
    inconclusive_action: str  # "rollback" | "pause"
    confirm_step: bool = False  # each step after the first waits for an approval
    confirm_promotion: bool = False  # the last step (100 %) waits for an approval

    def gate_before(self, step: int) -> str | None:
        """The gate a passed analysis must clear before entering `step`, if any."""
        if self.weights[step] == 100:
            return "confirm-promotion" if self.confirm_promotion else None
        return "confirm-step" if self.confirm_step else None

    def __post_init__(self) -> None:
        if not self.weights or self.weights[-1] != 100:
            raise ValueError("a plan's weights must end at 100")


# ---- Events: what happened -------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Begin the rollout (only from Pending)."""

    at: datetime


@dataclass(frozen=True)
class Tick:
    """Time passed: re-assert the weight, and ask for an analysis when the step is due."""

    at: datetime


@dataclass(frozen=True)
class AnalysisDone:
    """The analysis of the current step ended with `verdict` (pass/fail/inconclusive).

    `started` is the `step_started` of the state the analysis was asked in. Two jobs can
    ask for the same step's analysis (the step job and the guard's tick); a result that
    arrives after the other one moved the step on measured traffic of an attempt that is
    over, and is ignored rather than advancing a second time.
    """

    at: datetime
    verdict: Verdict
    reason: str
    started: datetime | None = None


@dataclass(frozen=True)
class GuardBreached:
    """A severe breach between steps: roll back now."""

    at: datetime
    reason: str


@dataclass(frozen=True)
class Converged:
    """The weight the state asks for is in the VirtualService (ends Promoting/RollingBack)."""

    at: datetime


@dataclass(frozen=True)
class ActionFailed:
    """We could not act (the write failed for good, Prometheus unreachable, ...)."""

    at: datetime
    reason: str


@dataclass(frozen=True)
class Command:
    """A person's command: abort, pause, resume or promote."""

    at: datetime
    name: str  # "abort" | "pause" | "resume" | "promote" | "approve"
    by: str = "user"
    step: int | None = None  # for "approve": the step whose gate it clears


Event = Start | Tick | AnalysisDone | GuardBreached | Converged | ActionFailed | Command


# ---- Actions: what to do -----------------------------------------------------------------


@dataclass(frozen=True)
class SetWeight:
    """Make the VirtualService send `canary` % to the canary (idempotent)."""

    canary: int


@dataclass(frozen=True)
class Analyze:
    """Run the step's analysis now and feed the result back as AnalysisDone."""


@dataclass(frozen=True)
class Announce:
    """Tell people (log, notifiers) about a transition."""

    transition: Transition


Action = SetWeight | Analyze | Announce


@dataclass(frozen=True)
class Decision:
    """The next state and the actions that bring the world in line with it."""

    state: RolloutState
    actions: tuple[Action, ...]


# ---- The machine -------------------------------------------------------------------------


def desired_weight(state: RolloutState) -> int:
    """The canary weight the state says traffic must be at."""
    if state.phase in (Phase.PROMOTING, Phase.SUCCEEDED):
        return 100
    if state.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.FAILED, Phase.PENDING):
        return 0
    return state.weight


def decide(state: RolloutState, event: Event, plan: Plan) -> Decision:
    """The engine's one entry point. Terminal states ignore every event."""
    if state.terminal:
        return Decision(state, ())
    match event:
        case Start():
            return _start(state, event, plan)
        case Tick():
            return _tick(state, event, plan)
        case AnalysisDone():
            return _analysis(state, event, plan)
        case GuardBreached():
            return _roll_back(state, event.at, f"guard: {event.reason}")
        case Converged():
            return _converged(state, event)
        case ActionFailed():
            return _move(state, event.at, Phase.FAILED, reason=f"could not act: {event.reason}")
        case Command():
            return _command(state, event, plan)


def _start(state: RolloutState, event: Start, plan: Plan) -> Decision:
    if state.phase is not Phase.PENDING:
        return Decision(state, ())
    return _enter_step(state, event.at, plan, 0, "started")


def _tick(state: RolloutState, event: Tick, plan: Plan) -> Decision:
    """Re-assert the weight; in Progressing, ask for the analysis once the step is due."""
    actions: list[Action] = [SetWeight(desired_weight(state))]
    if state.phase is Phase.PROGRESSING and _step_due(state, event.at, plan):
        actions.append(Analyze())
    return Decision(state, tuple(actions))


def _step_due(state: RolloutState, now: datetime, plan: Plan) -> bool:
    return state.step_started is None or now >= state.step_started + plan.interval


def _analysis(state: RolloutState, event: AnalysisDone, plan: Plan) -> Decision:
    """Pass advances one step; fail counts toward the failure limit; inconclusive counts
    toward the inconclusive limit in a row. Neither fail nor inconclusive ever advances."""
    if state.phase is not Phase.PROGRESSING:
        return Decision(state, ())
    if event.started is not None and event.started != state.step_started:
        return Decision(state, ())  # stale: this step attempt was already decided
    if event.verdict is Verdict.PASS:
        return _passed(state, event, plan)
    if event.verdict is Verdict.FAIL:
        failed = state.failed_checks + 1
        counted = state.model_copy(update={"failed_checks": failed, "inconclusive_streak": 0})
        if failed >= plan.failure_limit:
            return _roll_back(counted, event.at, f"failed check {failed}: {event.reason}")
        return _hold(counted, event.at, f"failed check {failed}: {event.reason}")
    streak = state.inconclusive_streak + 1
    counted = state.model_copy(update={"inconclusive_streak": streak})
    reason = f"inconclusive check {streak} in a row: {event.reason}"
    if streak < plan.inconclusive_limit:
        return _hold(counted, event.at, reason)
    if plan.inconclusive_action == "rollback":
        return _roll_back(counted, event.at, reason)
    return _move(counted, event.at, Phase.PAUSED, reason=reason)


def _passed(state: RolloutState, event: AnalysisDone, plan: Plan) -> Decision:
    """Advance one step, unless a gate must be approved first: then hold the weight and keep
    analysing every interval (a failure while waiting still counts and can roll back)."""
    gate = plan.gate_before(state.step + 1)
    if gate is None:
        return _enter_step(state, event.at, plan, state.step + 1, event.reason)
    if state.awaiting == gate:
        return _hold(state.model_copy(update={"inconclusive_streak": 0}), event.at, state.reason)
    waiting = state.model_copy(update={"awaiting": gate, "inconclusive_streak": 0})
    return _move(
        waiting, event.at, Phase.PROGRESSING, reason=f"waiting for {gate}", step_started=event.at
    )


def _approve(state: RolloutState, event: Command, plan: Plan) -> Decision:
    """An approval of the current step's gate advances; a stale or early one does nothing."""
    if state.phase is not Phase.PROGRESSING or state.awaiting is None:
        return Decision(state, ())
    if event.step is not None and event.step != state.step:
        return Decision(state, ())
    cleared = state.model_copy(update={"awaiting": None})
    return _enter_step(cleared, event.at, plan, state.step + 1, f"{state.awaiting} by {event.by}")


def _hold(state: RolloutState, at: datetime, reason: str) -> Decision:
    """Stay at the step and analyse again after another interval."""
    held = state.model_copy(update={"step_started": at, "reason": reason})
    return Decision(held, (SetWeight(desired_weight(held)),))


def _enter_step(state: RolloutState, at: datetime, plan: Plan, step: int, reason: str) -> Decision:
    """Go to step `step`; reaching the weight 100 is promotion, not another analysis step."""
    state = state.model_copy(update={"awaiting": None})
    weight = plan.weights[step]
    if weight == 100:
        return _move(state, at, Phase.PROMOTING, step=step, weight=100, reason=reason)
    return _move(
        state,
        at,
        Phase.PROGRESSING,
        step=step,
        weight=weight,
        reason=reason,
        inconclusive_streak=0,
        step_started=at,
    )


def _roll_back(state: RolloutState, at: datetime, reason: str) -> Decision:
    cleared = state.model_copy(update={"awaiting": None})
    return _move(cleared, at, Phase.ROLLING_BACK, weight=0, reason=reason)


def _converged(state: RolloutState, event: Converged) -> Decision:
    if state.phase is Phase.PROMOTING:
        return _move(state, event.at, Phase.SUCCEEDED, reason="promoted")
    if state.phase is Phase.ROLLING_BACK:
        return _move(state, event.at, Phase.ROLLED_BACK, reason=state.reason)
    return Decision(state, ())


def _command(state: RolloutState, event: Command, plan: Plan) -> Decision:
    by = f"{event.name} by {event.by}"
    if event.name == "approve":
        return _approve(state, event, plan)
    if event.name == "abort":
        aborted = state.model_copy(update={"aborted": True})
        return _roll_back(aborted, event.at, by)
    if event.name == "promote":
        promoted = state.model_copy(update={"awaiting": None})
        return _move(promoted, event.at, Phase.PROMOTING, weight=100, reason=by)
    if event.name == "pause" and state.phase in (Phase.PENDING, Phase.PROGRESSING):
        return _move(state, event.at, Phase.PAUSED, reason=by)
    if event.name == "resume" and state.phase is Phase.PAUSED:
        if state.step < 0:
            return _enter_step(state, event.at, plan, 0, by)
        return _move(
            state,
            event.at,
            Phase.PROGRESSING,
            reason=by,
            inconclusive_streak=0,
            step_started=event.at,
        )
    return Decision(state, ())


def _move(
    state: RolloutState,
    at: datetime,
    phase: Phase,
    *,
    reason: str,
    step: int | None = None,
    weight: int | None = None,
    inconclusive_streak: int | None = None,
    step_started: datetime | None = None,
) -> Decision:
    """Record a transition and emit the weight it implies plus an announcement."""
    update: dict[str, object] = {"phase": phase, "reason": reason}
    for key, value in (
        ("step", step),
        ("weight", weight),
        ("inconclusive_streak", inconclusive_streak),
        ("step_started", step_started),
    ):
        if value is not None:
            update[key] = value
    moved = state.model_copy(update=update)
    transition = Transition(
        at=at, phase=phase, step=moved.step, weight=desired_weight(moved), reason=reason
    )
    moved = moved.model_copy(update={"history": (*state.history, transition)})
    return Decision(moved, (SetWeight(desired_weight(moved)), Announce(transition)))
