"""No traffic reaches the canary (the sandbox runs without load): every check is
inconclusive, which never advances, and at the policy's limit its action is taken."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_helpers import DEMO_POLICY, Sandbox, collapse, run_to_end, running_sandbox

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def quiet_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The sandbox with everything but the load."""
    directory = tmp_path_factory.mktemp("quiet")
    with running_sandbox(directory, "kube,apps,mesh,prometheus") as sandbox:
        yield sandbox


def policy(directory: Path, action: str) -> Path:
    """The demo policy with 2 s steps and `inconclusive: {limit: 2, action}`."""
    doc = yaml.safe_load(DEMO_POLICY.read_text())
    doc["metadata"]["name"] = f"quiet-{action}"
    doc["spec"] |= {"interval": "2s", "inconclusive": {"limit": 2, "action": action}}
    path = directory / f"quiet-{action}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize(
    ("action", "code", "phase", "weights"),
    [("rollback", 1, "RolledBack", (100, 0)), ("pause", 4, "Paused", (90, 10))],
)
def test_inconclusive_checks_never_advance_and_end_in_the_policy_action(
    quiet_sandbox: Sandbox,
    tmp_path: Path,
    action: str,
    code: int,
    phase: str,
    weights: tuple[int, int],
) -> None:
    before = len(quiet_sandbox.canary_writes())
    exit_code, record, stderr = run_to_end(quiet_sandbox, policy(tmp_path, action))
    assert exit_code == code, stderr
    assert record is not None and record["phase"] == phase
    steps = [c["verdict"] for c in record["checks"] if c["kind"] == "step"]
    assert steps == ["inconclusive", "inconclusive"]
    assert "inconclusive check 2 in a row" in record["reason"]
    assert quiet_sandbox.weights() == weights  # pause holds the step's weight
    assert 20 not in collapse(quiet_sandbox.canary_writes()[before:])
