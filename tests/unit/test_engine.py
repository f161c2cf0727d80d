"""The pure state machine: transitions, counters, and invariants over random event streams."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from rollout.engine import (
    ActionFailed,
    AnalysisDone,
    Analyze,
    Announce,
    Command,
    Converged,
    Decision,
    Event,
    GuardBreached,
    Phase,
    Plan,
    RolloutState,
    SetWeight,
    Start,
    Tick,
    decide,
    desired_weight,
)
from rollout.judge import Verdict

T0 = datetime(2026, 1, 1, tzinfo=UTC)
INTERVAL = timedelta(seconds=10)


def plan(
    weights: tuple[int, ...] = (10, 20, 50, 100),
    failure_limit: int = 1,
    inconclusive_limit: int = 2,
    inconclusive_action: str = "pause",
) -> Plan:
    return Plan(weights, INTERVAL, failure_limit, inconclusive_limit, inconclusive_action)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(events: list[Event], p: Plan | None = None) -> Decision:
    state = RolloutState()
    decision = Decision(state, ())
    for event in events:
        decision = decide(decision.state, event, p or plan())
    return decision


def weights_set(decision: Decision) -> list[int]:
    return [a.canary for a in decision.actions if isinstance(a, SetWeight)]


def test_start_enters_the_first_step_and_sets_its_weight() -> None:
    d = run([Start(at(0))])
    assert d.state.phase is Phase.PROGRESSING
    assert (d.state.step, d.state.weight) == (0, 10)
    assert weights_set(d) == [10]
    assert any(isinstance(a, Announce) for a in d.actions)


def test_tick_asks_for_analysis_only_once_the_interval_has_passed() -> None:
    started = run([Start(at(0))]).state
    early = decide(started, Tick(at(9)), plan())
    due = decide(started, Tick(at(10)), plan())
    assert Analyze() not in early.actions
    assert weights_set(early) == [10]  # level-triggered: the weight is re-asserted anyway
    assert Analyze() in due.actions


def test_healthy_canary_walks_every_step_then_promotes_and_succeeds() -> None:
    events: list[Event] = [Start(at(0))]
    for i in range(3):
        events.append(AnalysisDone(at(10 * (i + 1)), Verdict.PASS, "ok"))
    d = run(events)
    assert d.state.phase is Phase.PROMOTING
    assert desired_weight(d.state) == 100
    done = decide(d.state, Converged(at(31)), plan())
    assert done.state.phase is Phase.SUCCEEDED
    assert [t.weight for t in done.state.history] == [10, 20, 50, 100, 100]


def test_a_failed_check_rolls_back_when_the_failure_limit_is_reached() -> None:
    p = plan(failure_limit=2)
    first = run([Start(at(0)), AnalysisDone(at(10), Verdict.FAIL, "errors")], p)
    assert first.state.phase is Phase.PROGRESSING
    assert (first.state.step, first.state.failed_checks) == (0, 1)
    assert first.state.step_started == at(10)  # analysed again after another interval
    second = decide(first.state, AnalysisDone(at(20), Verdict.FAIL, "errors"), p)
    assert second.state.phase is Phase.ROLLING_BACK
    assert weights_set(second) == [0]
    assert decide(second.state, Converged(at(21)), p).state.phase is Phase.ROLLED_BACK


def test_failed_checks_are_counted_over_the_whole_run_not_reset_by_a_pass() -> None:
    p = plan(failure_limit=2)
    d = run(
        [
            Start(at(0)),
            AnalysisDone(at(10), Verdict.FAIL, "x"),
            AnalysisDone(at(20), Verdict.PASS, "ok"),
            AnalysisDone(at(30), Verdict.FAIL, "x"),
        ],
        p,
    )
    assert d.state.phase is Phase.ROLLING_BACK


def test_inconclusive_never_advances_and_pauses_at_the_limit() -> None:
    d = run([Start(at(0)), AnalysisDone(at(10), Verdict.INCONCLUSIVE, "no data")])
    assert (d.state.phase, d.state.step, d.state.inconclusive_streak) == (
        Phase.PROGRESSING,
        0,
        1,
    )
    d = decide(d.state, AnalysisDone(at(20), Verdict.INCONCLUSIVE, "no data"), plan())
    assert d.state.phase is Phase.PAUSED
    assert desired_weight(d.state) == 10  # a pause holds the weight


def test_inconclusive_streak_rolls_back_when_the_policy_says_so() -> None:
    p = plan(inconclusive_action="rollback")
    d = run(
        [
            Start(at(0)),
            AnalysisDone(at(10), Verdict.INCONCLUSIVE, "few requests"),
            AnalysisDone(at(20), Verdict.INCONCLUSIVE, "few requests"),
        ],
        p,
    )
    assert d.state.phase is Phase.ROLLING_BACK
    assert "inconclusive check 2 in a row" in d.state.reason


def test_a_pass_resets_the_inconclusive_streak() -> None:
    d = run(
        [
            Start(at(0)),
            AnalysisDone(at(10), Verdict.INCONCLUSIVE, "x"),
            AnalysisDone(at(20), Verdict.PASS, "ok"),
            AnalysisDone(at(30), Verdict.INCONCLUSIVE, "x"),
        ]
    )
    assert d.state.phase is Phase.PROGRESSING
    assert d.state.inconclusive_streak == 1


def test_guard_breach_rolls_back_at_once_mid_step() -> None:
    d = run([Start(at(0)), GuardBreached(at(3), "error rate 0.3 > 0.2")])
    assert d.state.phase is Phase.ROLLING_BACK
    assert weights_set(d) == [0]


def test_failure_to_act_puts_traffic_on_stable() -> None:
    d = run([Start(at(0)), AnalysisDone(at(10), Verdict.PASS, "ok"), ActionFailed(at(11), "503")])
    assert d.state.phase is Phase.FAILED
    assert desired_weight(d.state) == 0
    assert weights_set(d) == [0]


def test_terminal_states_ignore_every_event() -> None:
    failed = run([Start(at(0)), ActionFailed(at(1), "x")]).state
    for event in (Tick(at(2)), Start(at(2)), Command(at(2), "resume"), Converged(at(2))):
        assert decide(failed, event, plan()) == Decision(failed, ())


def test_abort_rolls_back_and_is_marked_aborted() -> None:
    d = run([Start(at(0)), Command(at(1), "abort", by="alice")])
    assert d.state.phase is Phase.ROLLING_BACK
    assert d.state.aborted
    assert d.state.reason == "abort by alice"


def test_pause_holds_and_resume_restarts_the_step_interval() -> None:
    paused = run([Start(at(0)), Command(at(4), "pause")]).state
    assert paused.phase is Phase.PAUSED
    assert Analyze() not in decide(paused, Tick(at(60)), plan()).actions
    resumed = decide(paused, Command(at(60), "resume"), plan()).state
    assert (resumed.phase, resumed.step, resumed.step_started) == (Phase.PROGRESSING, 0, at(60))


def test_promote_skips_the_remaining_steps() -> None:
    d = run([Start(at(0)), Command(at(1), "promote")])
    assert d.state.phase is Phase.PROMOTING
    assert weights_set(d) == [100]


def test_analysis_outside_progressing_is_ignored() -> None:
    paused = run([Start(at(0)), Command(at(1), "pause")]).state
    assert decide(paused, AnalysisDone(at(2), Verdict.PASS, "ok"), plan()).state == paused


def test_state_round_trips_through_json() -> None:
    state = run([Start(at(0)), AnalysisDone(at(10), Verdict.FAIL, "x")], plan(failure_limit=3))
    text = state.state.model_dump_json()
    assert RolloutState.model_validate_json(text) == state.state


# ---- Invariants over arbitrary event streams ------------------------------------------------

_verdicts = st.sampled_from(list(Verdict))
_events = st.one_of(
    st.builds(lambda s: Tick(at(s)), st.integers(0, 10_000)),
    st.builds(lambda s, v: AnalysisDone(at(s), v, "r"), st.integers(0, 10_000), _verdicts),
    st.builds(lambda s: GuardBreached(at(s), "g"), st.integers(0, 10_000)),
    st.builds(lambda s: Converged(at(s)), st.integers(0, 10_000)),
    st.builds(
        lambda s, c: Command(at(s), c),
        st.integers(0, 10_000),
        st.sampled_from(["pause", "resume", "abort", "promote", "approve"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(_events, max_size=40),
    failure_limit=st.integers(1, 3),
    action=st.sampled_from(["pause", "rollback"]),
    gates=st.tuples(st.booleans(), st.booleans()),
)
def test_weights_stay_in_range_and_steps_never_skip_or_go_back(
    events: list[Event], failure_limit: int, action: str, gates: tuple[bool, bool]
) -> None:
    p = Plan((10, 20, 50, 100), INTERVAL, failure_limit, 2, action, *gates)
    state = decide(RolloutState(), Start(at(0)), p).state
    for event in events:
        before = state
        decision = decide(state, event, p)
        state = decision.state
        assert all(0 <= w <= 100 for w in weights_set(decision))
        assert 0 <= desired_weight(state) <= 100
        if state.phase is Phase.PROGRESSING and before.phase in (Phase.PROGRESSING, Phase.PAUSED):
            assert state.step in (before.step, before.step + 1)
            assert state.weight >= before.weight
        if before.terminal:
            assert state == before
        if state.step > before.step and state.phase is Phase.PROGRESSING:
            passed = isinstance(event, AnalysisDone) and event.verdict is Verdict.PASS
            approved = isinstance(event, Command) and event.name == "approve"
            assert approved if p.gate_before(state.step) else passed
            assert before.awaiting is None if passed else before.awaiting is not None


# ---- Gates ----------------------------------------------------------------------------------


def gated(confirm_step: bool = False, confirm_promotion: bool = False) -> Plan:
    return Plan((10, 20, 100), INTERVAL, 2, 2, "pause", confirm_step, confirm_promotion)


def test_a_gate_holds_the_weight_after_a_pass_and_keeps_analysing() -> None:
    p = gated(confirm_step=True)
    d = run([Start(at(0)), AnalysisDone(at(10), Verdict.PASS, "ok")], p)
    assert (d.state.phase, d.state.step, d.state.awaiting) == (
        Phase.PROGRESSING,
        0,
        "confirm-step",
    )
    assert weights_set(d) == [10]
    assert Analyze() in decide(d.state, Tick(at(20)), p).actions  # still analysed
    again = decide(d.state, AnalysisDone(at(20), Verdict.PASS, "ok"), p).state
    assert (again.step, again.awaiting) == (0, "confirm-step")


def test_an_approval_advances_exactly_one_step() -> None:
    p = gated(confirm_step=True)
    waiting = run([Start(at(0)), AnalysisDone(at(10), Verdict.PASS, "ok")], p).state
    approved = decide(waiting, Command(at(12), "approve", by="bob", step=0), p)
    assert (approved.state.step, approved.state.weight, approved.state.awaiting) == (1, 20, None)
    assert approved.state.reason == "confirm-step by bob"


def test_an_approval_for_another_step_or_with_nothing_waiting_does_nothing() -> None:
    p = gated(confirm_step=True)
    waiting = run([Start(at(0)), AnalysisDone(at(10), Verdict.PASS, "ok")], p).state
    assert decide(waiting, Command(at(12), "approve", step=1), p).state == waiting
    progressing = run([Start(at(0))], p).state
    assert decide(progressing, Command(at(1), "approve", step=0), p).state == progressing


def test_a_failure_while_waiting_still_rolls_back() -> None:
    p = gated(confirm_promotion=True)
    d = run(
        [
            Start(at(0)),
            AnalysisDone(at(10), Verdict.PASS, "ok"),
            AnalysisDone(at(20), Verdict.PASS, "ok"),
        ],
        p,
    )
    assert (d.state.step, d.state.awaiting) == (1, "confirm-promotion")
    for t in (30, 40):
        d = decide(d.state, AnalysisDone(at(t), Verdict.FAIL, "errors"), p)
    assert d.state.phase is Phase.ROLLING_BACK
    assert d.state.awaiting is None


def test_confirm_promotion_gates_only_the_last_step() -> None:
    p = gated(confirm_promotion=True)
    d = run([Start(at(0)), AnalysisDone(at(10), Verdict.PASS, "ok")], p)
    assert (d.state.step, d.state.awaiting) == (1, None)
    d = decide(d.state, AnalysisDone(at(20), Verdict.PASS, "ok"), p)
    assert (d.state.phase, d.state.awaiting) == (Phase.PROGRESSING, "confirm-promotion")
    d = decide(d.state, Command(at(25), "approve", step=1), p)
    assert d.state.phase is Phase.PROMOTING


def test_a_second_result_for_an_already_decided_step_attempt_is_ignored() -> None:
    """The step job and the guard's tick can both analyse a due step; the slower result
    must not advance again (a skipped step) nor count again (a shortened limit)."""
    started = run([Start(at(0))])
    attempt = started.state.step_started
    passed = decide(started.state, AnalysisDone(at(10), Verdict.PASS, "ok", attempt), plan())
    assert (passed.state.step, passed.state.weight) == (1, 20)
    late = decide(passed.state, AnalysisDone(at(10.1), Verdict.PASS, "ok", attempt), plan())
    assert late == Decision(passed.state, ())
    held = decide(
        started.state, AnalysisDone(at(10), Verdict.INCONCLUSIVE, "no data", attempt), plan()
    )
    late = decide(
        held.state, AnalysisDone(at(10.1), Verdict.INCONCLUSIVE, "no data", attempt), plan()
    )
    assert late.state.inconclusive_streak == held.state.inconclusive_streak == 1
