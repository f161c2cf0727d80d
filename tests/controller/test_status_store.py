"""The status store without a cluster: requests are handed over exactly once, a status
written by another replica stops this one, a 409 is retried, and an unchanged status is not
written again."""

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from rollout.driver import CheckRecord
from rollout.engine import Phase, RolloutState
from rollout.resources import Run, parse_rollout
from rollout.status_store import LostRollout, StatusStore
from rollout.traffic.istio import ConflictError

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RUN = Run(stable="v1", canary="v2")


class FakeApi:
    """One CanaryRollout in memory with resourceVersion checks on status writes."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] = {
            "apiVersion": "rollout.cello.dev/v1alpha1",
            "kind": "CanaryRollout",
            "metadata": {"name": "web", "namespace": "demo", "generation": 1,
                         "resourceVersion": "1", "annotations": {}},
            "spec": {"target": {"virtualService": "web", "stable": "v1", "canary": "v2"},
                     "policyRef": {"name": "p"}},
        }  # fmt: skip
        self.writes = 0
        self.conflicts = 0

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.obj)

    def replace_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        if self.conflicts:
            self.conflicts -= 1
            self.bump()
            raise ConflictError("409")
        if obj["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
            raise ConflictError("409")
        self.obj["status"] = obj["status"]
        self.bump()
        self.writes += 1
        return copy.deepcopy(self.obj)

    def bump(self) -> None:
        meta = self.obj["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)

    def annotate(self, rid: str, command: str) -> None:
        self.obj["metadata"]["annotations"][f"request.rollout.cello.dev/{rid}"] = command
        self.bump()


def store_for(api: FakeApi, leading: bool = True) -> StatusStore:
    return StatusStore(api, parse_rollout(api.get("", "")), RUN, lambda: leading)  # type: ignore[arg-type]


def test_a_request_is_returned_once_and_recorded_in_the_same_write() -> None:
    api = FakeApi()
    store = store_for(api)
    api.annotate("0001", "promote")
    commands = store.save(RolloutState(phase=Phase.PROGRESSING, step=0, weight=20), NOW)
    assert [c.name for c in commands] == ["promote"]
    assert api.obj["status"]["handledRequests"] == ["0001"]
    assert store.save(RolloutState(phase=Phase.PROGRESSING, step=0, weight=20), NOW) == []


def test_spec_paused_is_applied_on_its_edges_only() -> None:
    api = FakeApi()
    store = store_for(api)
    api.obj["spec"]["paused"] = True
    state = RolloutState(phase=Phase.PROGRESSING, step=0, weight=20)
    assert [c.name for c in store.save(state, NOW)] == ["pause"]
    assert store.save(state, NOW) == []
    api.obj["spec"]["paused"] = False
    assert [c.name for c in store.save(state, NOW)] == ["resume"]


def test_an_unchanged_status_is_not_written_again() -> None:
    api = FakeApi()
    store = store_for(api)
    state = RolloutState(phase=Phase.PROGRESSING, step=1, weight=40)
    store.save(state, NOW)
    store.save(state, NOW)
    assert api.writes == 1


def test_a_conflict_is_retried_with_the_new_resource_version() -> None:
    api = FakeApi()
    api.conflicts = 2
    store_for(api).save(RolloutState(phase=Phase.PROGRESSING, step=0, weight=20), NOW)
    assert api.obj["status"]["canaryWeight"] == 20


def test_a_status_written_by_another_replica_stops_this_one() -> None:
    api = FakeApi()
    mine, theirs = store_for(api), store_for(api)
    theirs.save(RolloutState(phase=Phase.PROGRESSING, step=2, weight=60), NOW)
    with pytest.raises(LostRollout):
        mine.save(RolloutState(phase=Phase.PROGRESSING, step=1, weight=40), NOW)
    assert api.obj["status"]["step"] == 2


def test_a_replica_that_is_not_leading_never_writes() -> None:
    api = FakeApi()
    with pytest.raises(LostRollout):
        store_for(api, leading=False).save(RolloutState(), NOW)
    assert api.writes == 0


def test_last_analysis_comes_from_the_latest_step_check(
    check_record: CheckRecord,
) -> None:
    api = FakeApi()
    store = store_for(api)
    store.follow(lambda: [check_record])
    store.save(RolloutState(phase=Phase.PROGRESSING, step=1, weight=40), NOW)
    last = api.obj["status"]["lastAnalysis"]
    assert last["verdict"] == "pass" and last["durationSeconds"] == pytest.approx(0.25)
    assert last["metrics"][0]["metric"] == "error-rate"


@pytest.fixture
def check_record() -> CheckRecord:
    from rollout.analysis import AnalysisReport
    from rollout.judge import CheckVerdict, MetricVerdict, Verdict
    from rollout.subsets import Subject

    metric = MetricVerdict(
        metric="error-rate", verdict=Verdict.PASS, reason="ok", canary=0.0, stable=0.0,
        canary_requests=100, stable_requests=200, min_requests=20, limits=(),
        canary_query="q1", stable_query="q2",
    )  # fmt: skip
    report = AnalysisReport(
        policy="p", subject=Subject("demo", "web", "v1", "v2"), window="10s", at=NOW,
        check=CheckVerdict(Verdict.PASS, "ok", (metric,)), results=(),
    )  # fmt: skip
    return CheckRecord("step", 0, 20, report, 0.25)
