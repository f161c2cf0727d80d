"""Which engine transitions become which notifications, driven through the real engine;
and the per-policy / per-rollout configuration."""

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from notify_helpers import T0, WHERE

from rollout.engine import (
    ActionFailed,
    AnalysisDone,
    Announce,
    Command,
    Converged,
    Event,
    Plan,
    RolloutState,
    Start,
    decide,
)
from rollout.errors import InputError
from rollout.judge import Verdict
from rollout.notify import config
from rollout.notify.events import from_transition
from rollout.notify.kube_events import kube_event
from rollout.policy import Notifications, RolloutPolicy
from rollout.secrets import SecretReader

DEFAULT_POLICY = Path(__file__).parents[2] / "policies" / "default.yaml"


def announced(plan: Plan, *events: Event) -> list[tuple[str, int, int, str]]:
    """(kind, step, weight, reason) of every notification the events cause, in order."""
    state, out = RolloutState(), []
    for event in events:
        decision = decide(state, event, plan)
        state = decision.state
        for action in decision.actions:
            if isinstance(action, Announce):
                note = from_transition(action.transition, state, WHERE, None)
                if note is not None:
                    out.append((note.kind, note.step, note.weight, note.reason))
    return out


def plan(**gates: bool) -> Plan:
    return Plan((50, 100), timedelta(seconds=1), 1, 2, "pause", **gates)


def passed(s: int) -> AnalysisDone:
    return AnalysisDone(T0 + timedelta(seconds=s), Verdict.PASS, "all good")


def test_a_promotion_is_started_then_promoted_with_the_reason_it_was_promoted() -> None:
    assert announced(plan(), Start(T0), passed(1), Converged(T0 + timedelta(seconds=2))) == [
        ("started", 1, 50, "started"),
        ("promoted", 2, 100, "all good"),
    ]


def test_a_failed_check_announces_only_the_rollback_and_a_failed_write_is_failed() -> None:
    fail = AnalysisDone(T0, Verdict.FAIL, "error-rate: canary 0.5 > 0.05")
    assert announced(plan(), Start(T0), fail, Converged(T0))[1:] == [
        ("rolledBack", 1, 0, "failed check 1: error-rate: canary 0.5 > 0.05")
    ]
    assert announced(plan(), Start(T0), ActionFailed(T0, "API 500"))[1:] == [
        ("failed", 1, 0, "could not act: API 500")
    ]


def test_gates_announce_waiting_for_approval_and_an_approval_advances() -> None:
    events = [Start(T0), passed(1), passed(2), Command(T0, "approve", by="ana", step=0)]
    assert [n[0] for n in announced(plan(confirm_promotion=True), *events)] == [
        "started",
        "waitingForApproval",
    ]  # the promotion itself waits for Converged
    three = Plan((25, 50, 100), timedelta(seconds=1), 1, 2, "pause", confirm_step=True)
    kinds = [n[:3] for n in announced(three, *events)]
    assert kinds == [("started", 1, 25), ("waitingForApproval", 1, 25), ("stepAdvanced", 2, 50)]


def test_pause_is_announced_and_resume_is_not_a_step() -> None:
    unsure = AnalysisDone(T0, Verdict.INCONCLUSIVE, "no data")
    events = [Start(T0), unsure, unsure, Command(T0, "resume", by="ana")]
    assert [n[0] for n in announced(plan(), *events)] == ["started", "paused"]


def test_kubernetes_events_name_the_object_and_warn_on_trouble() -> None:
    fail = AnalysisDone(T0, Verdict.FAIL, "bad")
    state = decide(decide(RolloutState(), Start(T0), plan()).state, fail, plan()).state
    state = decide(state, Converged(T0), plan()).state
    note = from_transition(state.history[-1], state, WHERE, None)
    assert note is not None
    body = kube_event(note)
    assert (body.reason, body.type, body.involved_object.kind) == (
        "RolledBack",
        "Warning",
        "VirtualService",
    )
    assert body.involved_object.name == "cello-app" and body.metadata.namespace == "demo"


def sinks(*specs: dict[str, object]) -> Notifications:
    return Notifications.model_validate({"sinks": list(specs)})


def test_a_rollouts_sinks_add_to_the_policys_and_replace_one_of_the_same_name() -> None:
    team = {"name": "team", "type": "kubernetesEvents"}
    policy = sinks(team, {"name": "audit", "type": "kubernetesEvents", "events": ["promoted"]})
    rollout = sinks({**team, "events": []}, {"name": "mine", "type": "kubernetesEvents"})
    merged = config.merged(policy, rollout)
    assert [(s.name, s.events) for s in merged] == [
        ("team", []),
        ("audit", ["promoted"]),
        ("mine", None),
    ]
    routes = config.routes(merged, SecretReader(None, "demo", {}), None)  # type: ignore[arg-type]
    assert [(r.sink.name, len(r.events)) for r in routes] == [("audit", 1), ("mine", 9)]


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        ({"name": "s", "type": "slack"}, "a slack sink needs a url"),
        ({"name": "w", "type": "webhook", "url": {"env": "U"}}, "needs signingKey"),
        ({"name": "k", "type": "kubernetesEvents", "url": {"env": "U"}}, "takes no url"),
        ({"name": "s", "type": "slack", "url": {}}, "exactly one of env, secretKeyRef"),
        (
            {"name": "s", "type": "slack", "url": {"env": "U"}, "events": ["won"]},
            r"events\[0\]: Input should be 'started'",
        ),
    ],
)
def test_bad_sinks_are_refused_in_the_per_rollout_file(
    tmp_path: Path, sink: dict[str, object], message: str
) -> None:
    path = tmp_path / "notify.yaml"
    path.write_text(yaml.safe_dump({"sinks": [sink]}))
    with pytest.raises(InputError, match=message):
        config.load_file(path)


def test_the_commented_example_in_the_default_policy_is_valid() -> None:
    text = DEFAULT_POLICY.read_text()
    start = text.index("  # notifications:")
    example = "\n".join(line.replace("  # ", "  ", 1) for line in text[start:].splitlines())
    policy = RolloutPolicy.model_validate(yaml.safe_load(text[:start] + example))
    notifications = policy.spec.notifications
    assert notifications is not None
    assert [s.type for s in notifications.sinks] == ["slack", "webhook", "kubernetesEvents"]
