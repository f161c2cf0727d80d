"""Gates end to end: a `rollout run` waiting at confirm-promotion holds its weight and keeps
analysing until `rollout approve`; a canary that fails while waiting is rolled back."""

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import MakeSandbox
from e2e_helpers import (
    DEMO_POLICY,
    ROLLOUT,
    TARGET_FLAGS,
    Sandbox,
    collapse,
    kill,
    start_run,
    wait_until,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def gated_policy(tmp_path: Path) -> Path:
    """The demo policy with a confirm-promotion gate cleared by a person."""
    policy = yaml.safe_load(DEMO_POLICY.read_text())
    policy["metadata"]["name"] = "demo-gated"
    policy["spec"]["gates"] = {"confirmPromotion": {}}
    path = tmp_path / "gated.yaml"
    path.write_text(yaml.safe_dump(policy))
    return path


def waiting_state(sandbox: Sandbox) -> dict[str, Any] | None:
    """The stored state while the run waits at a gate, else None."""
    stored = sandbox.stored_run()
    if stored is None or stored["state"].get("awaiting") is None:
        return None
    state: dict[str, Any] = stored["state"]
    return state


def test_a_gate_holds_the_weight_and_keeps_analysing_until_approved(
    make_sandbox: MakeSandbox, gated_policy: Path
) -> None:
    sandbox = make_sandbox()
    run = start_run(sandbox, gated_policy)
    wait_until(lambda: waiting_state(sandbox) is not None, what="the run to wait at the gate")
    first = waiting_state(sandbox)
    assert first is not None and first["awaiting"] == "confirm-promotion"
    # Held through at least one more passing analysis (each one restarts the step's clock).
    wait_until(
        lambda: (waiting_state(sandbox) or first)["step_started"] != first["step_started"],
        what="an analysis while waiting",
    )
    assert sandbox.weights() == (50, 50)
    assert run.proc.poll() is None

    approve = subprocess.run(
        [ROLLOUT, "approve", *TARGET_FLAGS],
        env=os.environ | sandbox.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert approve.returncode == 0, approve.stderr
    assert "approved confirm-promotion" in approve.stdout

    code, record, stderr = run.finish()
    assert code == 0, stderr
    assert record is not None and record["phase"] == "Succeeded"
    assert sandbox.weights() == (0, 100)
    assert collapse(sandbox.canary_writes()) == [0, 10, 20, 50, 100]
    reasons = [t["reason"] for t in record["transitions"]]
    assert "waiting for confirm-promotion" in reasons
    assert any(r.startswith("confirm-promotion by ") for r in reasons)


def test_a_canary_that_fails_while_waiting_is_rolled_back(
    make_sandbox: MakeSandbox, gated_policy: Path
) -> None:
    sandbox = make_sandbox()
    run = start_run(sandbox, gated_policy)
    wait_until(lambda: waiting_state(sandbox) is not None, what="the run to wait at the gate")
    kill(sandbox.pid("app-v2"))  # the canary crashes: the mesh answers 503 for it

    code, record, stderr = run.finish()
    assert code == 1, stderr
    assert record is not None and record["phase"] == "RolledBack"
    assert sandbox.weights() == (100, 0)
    assert collapse(sandbox.canary_writes()) == [0, 10, 20, 50, 0]
