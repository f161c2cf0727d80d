"""`rollout run` against a faulty v2: 30 % 5xx rolls back within 10 s of the canary's first
traffic (the guard), 300 ms more latency rolls back at the first step's check. Each test has
its own sandbox, since the fault is v2's own setting."""

import pytest
from e2e_helpers import MakeSandbox, collapse, run_to_end

from rollout.demo import canary_exposure

pytestmark = pytest.mark.e2e

MAX_EXPOSURE_S = 10.0


def test_a_canary_answering_30_percent_5xx_is_rolled_back_within_10s(
    make_sandbox: MakeSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = make_sandbox(v2_error_rate=0.3)
    code, record, stderr = run_to_end(sandbox)
    assert code == 1, stderr
    assert record is not None and record["phase"] == "RolledBack"
    assert "error-rate" in record["reason"]
    assert sandbox.weights() == (100, 0)
    assert collapse(sandbox.canary_writes()) == [0, 10, 0]
    exposure = canary_exposure(record)
    with capsys.disabled():
        print(f"\n5xx canary: traffic on v2 for {exposure:.1f}s (recorded transitions)")
    assert exposure is not None and exposure <= MAX_EXPOSURE_S


def test_a_canary_300ms_slower_is_rolled_back(
    make_sandbox: MakeSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = make_sandbox(v2_latency_ms=300)
    code, record, stderr = run_to_end(sandbox)
    assert code == 1, stderr
    assert record is not None and record["phase"] == "RolledBack"
    assert "latency" in record["reason"]
    assert sandbox.weights() == (100, 0)
    assert collapse(sandbox.canary_writes()) == [0, 10, 0]
    exposure = canary_exposure(record)
    with capsys.disabled():
        print(f"\nslow canary: traffic on v2 for {exposure:.1f}s (recorded transitions)")
