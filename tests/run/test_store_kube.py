"""The standalone store: state in a VirtualService annotation that is also a lock.

Against the Kubernetes API stand-in, through the official client: the 409s that decide
races come from the server.
"""

import os
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client

from rollout.engine import Phase, RolloutState, Transition
from rollout.errors import InputError
from rollout.store import ANNOTATION, AnnotationStore, Holder, LockHeld, Request
from rollout.target import Target
from rollout.traffic.istio import KubeIstioStore

TARGET = Target(namespace="demo", virtual_service="cello-app", stable="v1", canary="v2")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ELSEWHERE = Holder("ci-runner-7", 4242)  # another host: only its lease can free the lock


def store(api: client.ApiClient, holder: Holder, target: Target = TARGET) -> AnnotationStore:
    return AnnotationStore(KubeIstioStore(api), target, holder, lease=timedelta(seconds=15))


def progressing(step: int = 2, weight: int = 50) -> RolloutState:
    t = Transition(at=NOW, phase=Phase.PROGRESSING, step=step, weight=weight, reason="ok")
    return RolloutState(
        phase=Phase.PROGRESSING, step=step, weight=weight, step_started=NOW, history=(t,)
    )


def annotation(api: client.ApiClient) -> str | None:
    vs = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "networking.istio.io", "v1", "demo", "virtualservices", "cello-app"
    )
    value: str | None = (vs["metadata"].get("annotations") or {}).get(ANNOTATION)
    return value


def test_a_fresh_virtual_service_starts_a_new_run_and_records_the_holder(
    api: client.ApiClient,
) -> None:
    state = store(api, ELSEWHERE).acquire(NOW)
    assert state == RolloutState()
    stored = store(api, Holder.me()).load()
    assert stored is not None
    assert stored.holder == str(ELSEWHERE)
    assert (stored.stable, stored.canary) == ("v1", "v2")


def test_a_second_run_is_refused_naming_the_holder(api: client.ApiClient) -> None:
    first = store(api, ELSEWHERE)
    first.acquire(NOW)
    first.save(progressing(), NOW)
    before = annotation(api)
    with pytest.raises(LockHeld, match="ci-runner-7:4242"):
        store(api, Holder.me()).acquire(NOW + timedelta(seconds=5))
    assert annotation(api) == before  # refused: nothing written


def test_an_expired_lease_lets_the_next_run_resume_the_stored_step(
    api: client.ApiClient,
) -> None:
    first = store(api, ELSEWHERE)
    first.acquire(NOW)
    first.save(progressing(step=2, weight=50), NOW)
    resumed = store(api, Holder.me()).acquire(NOW + timedelta(seconds=16))
    assert (resumed.phase, resumed.step, resumed.weight) == (Phase.PROGRESSING, 2, 50)
    with pytest.raises(LockHeld, match="taken over"):
        first.save(progressing(step=3, weight=80), NOW + timedelta(seconds=17))


def test_a_dead_holder_on_this_host_is_taken_over_at_once(api: client.ApiClient) -> None:
    dead = Holder.me()
    dead = Holder(dead.host, 2**22 + 12345)  # above the default pid_max: no such process
    first = store(api, dead)
    first.acquire(NOW)
    first.save(progressing(), NOW)
    resumed = store(api, Holder.me()).acquire(NOW + timedelta(seconds=1))
    assert resumed.step == 2


def test_a_finished_run_is_followed_by_a_fresh_one(api: client.ApiClient) -> None:
    first = store(api, ELSEWHERE)
    first.acquire(NOW)
    first.save(RolloutState(phase=Phase.ROLLED_BACK, step=1, weight=0), NOW)
    assert store(api, Holder.me()).acquire(NOW + timedelta(seconds=1)) == RolloutState()


def test_an_unfinished_run_of_other_subsets_is_not_resumed(api: client.ApiClient) -> None:
    first = store(api, ELSEWHERE)
    first.acquire(NOW)
    first.save(progressing(), NOW)
    other = Target(namespace="demo", virtual_service="cello-app", stable="v2", canary="v1")
    with pytest.raises(InputError, match="unfinished rollout v1 -> v2"):
        store(api, Holder.me(), other).acquire(NOW + timedelta(seconds=60))


def test_a_request_reaches_the_live_holder_exactly_once(api: client.ApiClient) -> None:
    holder = store(api, ELSEWHERE)
    holder.acquire(NOW)
    holder.save(progressing(), NOW)
    request = Request(name="abort", by="alice", at=NOW + timedelta(seconds=1))
    stored = store(api, Holder.me()).request(request)
    assert stored == progressing()  # a live holder applies it, not the requester
    later = NOW + timedelta(seconds=2)
    assert holder.save(progressing(), later) == [request.command()]
    assert holder.save(progressing(), later) == []  # taken out by the first save


def test_an_abort_with_no_live_holder_is_applied_to_the_stored_state(
    api: client.ApiClient,
) -> None:
    gone = store(api, ELSEWHERE)
    gone.acquire(NOW)
    gone.save(progressing(), NOW)
    request = Request(name="abort", by="alice", at=NOW + timedelta(seconds=60))
    aborted = store(api, Holder.me()).request(request)
    assert aborted is not None
    assert (aborted.phase, aborted.aborted, aborted.weight) == (Phase.ROLLED_BACK, True, 0)


def test_a_resumed_run_keeps_the_requests_made_while_nobody_held_it(
    api: client.ApiClient,
) -> None:
    gone = store(api, ELSEWHERE)
    gone.acquire(NOW)
    gone.save(progressing(), NOW)
    approval = Request(name="approve", by="bob", at=NOW + timedelta(seconds=30), step=2)
    store(api, ELSEWHERE).request(approval)
    successor = store(api, Holder.me())
    successor.acquire(NOW + timedelta(seconds=60))
    assert successor.save(progressing(), NOW + timedelta(seconds=61)) == [approval.command()]


def test_two_runs_racing_for_the_lock_never_both_get_it(api: client.ApiClient) -> None:
    stores = [store(api, Holder(f"runner-{i}", 100 + i)) for i in range(4)]
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def race(s: AnnotationStore) -> None:
        barrier.wait()
        try:
            s.acquire(NOW)
            outcomes.append("won")
        except LockHeld:
            outcomes.append("refused")

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused"] * 3 + ["won"]


def test_a_holder_killed_but_not_yet_reaped_is_taken_over_at_once(
    api: client.ApiClient,
) -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        zombie = Holder(Holder.me().host, child.pid)
        first = store(api, zombie)
        first.acquire(NOW)
        first.save(progressing(), NOW)
        os.kill(child.pid, signal.SIGKILL)
        wait_for_zombie(child.pid)  # killed, and its parent (this test) has not reaped it
        resumed = store(api, Holder.me()).acquire(NOW + timedelta(seconds=1))
        assert resumed.step == 2
    finally:
        child.kill()
        child.wait()


def wait_for_zombie(pid: int) -> None:
    for _ in range(200):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not become a zombie")
