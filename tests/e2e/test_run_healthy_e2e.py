"""`rollout run` as CI runs it, on one shared sandbox where v2 is healthy: a second run is
refused, a canary is promoted, a SIGKILLed run resumes where it stopped, and a run whose
Prometheus dies ends with exit 3 and traffic on stable.

The tests run in file order and each leaves the sandbox usable for the next (the one that
kills Prometheus is last). Weights are read from the stand-in's write history, which holds
every write, including those of a process that was killed.
"""

import os
import socket
import subprocess

import pytest
from e2e_helpers import (
    ROLLOUT,
    TARGET_FLAGS,
    Sandbox,
    collapse,
    kill,
    run_to_end,
    start_run,
    wait_until,
)

pytestmark = pytest.mark.e2e

PLAN = [10, 20, 50, 100]


def held_by(sandbox: Sandbox, pid: int) -> bool:
    stored = sandbox.stored_run()
    return stored is not None and stored["holder"] == f"{socket.gethostname()}:{pid}"


def test_a_second_concurrent_run_is_refused_naming_the_holder(healthy_sandbox: Sandbox) -> None:
    first = start_run(healthy_sandbox)
    try:
        wait_until(lambda: held_by(healthy_sandbox, first.proc.pid), what="the first run's lock")
        code, record, stderr = run_to_end(healthy_sandbox)
        assert code == 3
        assert record is None
        assert f"is being driven by {socket.gethostname()}:{first.proc.pid}" in stderr
        abort = subprocess.run(
            [ROLLOUT, "abort", *TARGET_FLAGS], capture_output=True, text=True, timeout=60,
            env=os.environ | healthy_sandbox.env,
        )  # fmt: skip
        assert abort.returncode == 0, abort.stderr
        code, record, _ = first.finish()
        assert (code, record and record["phase"]) == (4, "RolledBack")  # the first run went on
    finally:
        first.proc.kill()
    assert healthy_sandbox.weights() == (100, 0)


def test_a_healthy_canary_is_promoted_step_by_step(healthy_sandbox: Sandbox) -> None:
    before = len(healthy_sandbox.canary_writes())
    code, record, stderr = run_to_end(healthy_sandbox)
    assert code == 0, stderr
    assert record is not None and record["phase"] == "Succeeded"
    assert [c["verdict"] for c in record["checks"] if c["kind"] == "step"] == ["pass"] * 3
    assert healthy_sandbox.weights() == (0, 100)
    assert collapse(healthy_sandbox.canary_writes()[before:])[1:] == PLAN


def test_a_run_killed_with_sigkill_resumes_at_the_same_step(healthy_sandbox: Sandbox) -> None:
    before = len(healthy_sandbox.canary_writes())
    first = start_run(healthy_sandbox)
    try:
        wait_until(lambda: healthy_sandbox.weights() == (80, 20), what="the second step")
        kill(first.proc.pid)
        first.proc.wait()
    finally:
        first.proc.kill()
    assert healthy_sandbox.weights() == (80, 20)  # a killed run leaves traffic where it was
    code, record, stderr = run_to_end(healthy_sandbox)
    assert code == 0, stderr
    assert '"event": "rollout.resumed"' in stderr and '"step": 1' in stderr
    assert record is not None and record["phase"] == "Succeeded"
    # The second process judged the step it resumed at (20 %) before moving on.
    assert [c["weight"] for c in record["checks"] if c["kind"] == "step"] == [20, 50]
    # Both processes' writes: every step once, in order, never back, never skipped.
    assert collapse(healthy_sandbox.canary_writes()[before:])[1:] == PLAN


def test_prometheus_killed_mid_run_is_exit_3_and_never_promotes(healthy_sandbox: Sandbox) -> None:
    before = len(healthy_sandbox.canary_writes())
    run = start_run(healthy_sandbox)
    try:
        wait_until(lambda: healthy_sandbox.weights() == (80, 20), what="the second step")
        kill(healthy_sandbox.pid("prometheus"))
        code, record, stderr = run.finish()
    finally:
        run.proc.kill()
    assert code == 3, stderr
    assert record is not None and record["phase"] == "Failed"
    assert "Prometheus" in record["reason"] or "prometheus" in record["reason"]
    assert healthy_sandbox.weights() == (100, 0)
    walked = collapse(healthy_sandbox.canary_writes()[before:])[1:]  # after the previous run
    assert walked == [10, 20, 0]
