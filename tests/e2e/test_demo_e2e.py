"""`rollout demo` as a newcomer runs it: a healthy v2 is promoted, a v2 answering 30 % 5xx is
rolled back within 10 s of its first traffic (from the decision record's times), a v2 300 ms
slower is rolled back, and the sandbox it started is gone afterwards (unless --keep)."""

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest
from e2e_helpers import ROLLOUT, Sandbox, sandbox_processes

from rollout.demo import canary_exposure
from rollout.sandbox import runner

pytestmark = pytest.mark.e2e

DEMO_TIMEOUT_S = 120  # the bound for a healthy promotion


def demo(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ROLLOUT, "demo", *flags], capture_output=True, text=True, timeout=DEMO_TIMEOUT_S
    )


def test_demo_promotes_a_healthy_canary(capsys: pytest.CaptureFixture[str]) -> None:
    result = demo("--keep")
    kept = re.search(r"sandbox kept: source (\S+)/env", result.stdout)
    assert kept is not None, result.stdout + result.stderr
    sandbox = Sandbox(Path(kept.group(1)))
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "verdict: Succeeded (exit 0)" in result.stdout
        assert sandbox.weights() == (0, 100)
    finally:
        runner.down(sandbox.directory)
    assert sandbox_processes(sandbox.directory) == []
    promoted = re.search(r"promoted (\S+)s after the start", result.stdout)
    with capsys.disabled():
        print(f"\ndemo: promoted {promoted and promoted.group(1)}s after the canary started")


def test_demo_faulty_errors_rolls_back_within_10s_and_stops_the_sandbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "record.json"
    result = demo("--faulty", "errors", "--report", str(report))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "verdict: RolledBack (exit 1)" in result.stdout
    record = json.loads(report.read_text())
    assert record["transitions"][-1]["weight"] == 0  # all traffic back on v1
    exposure = canary_exposure(record)
    with capsys.disabled():
        print(f"\ndemo --faulty errors: v2 had traffic for {exposure:.1f}s")
    assert exposure is not None and exposure <= 10.0
    directory = re.search(r"env: (\S+)/env", result.stdout)
    assert directory is not None
    assert sandbox_processes(Path(directory.group(1))) == []
    assert not Path(directory.group(1)).exists()


def test_demo_faulty_latency_rolls_back(tmp_path: Path) -> None:
    report = tmp_path / "record.json"
    result = demo("--faulty", "latency", "--report", str(report))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "verdict: RolledBack (exit 1)" in result.stdout
    record = json.loads(report.read_text())
    assert "latency" in record["reason"]
    assert record["transitions"][-1]["weight"] == 0


def test_demo_interrupted_mid_canary_stops_the_sandbox_and_exits_3() -> None:
    proc = subprocess.Popen(
        [ROLLOUT, "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # Ctrl-C once the canary has traffic
            lines.append(line)
            if line.startswith("Progressing step 1/4"):
                proc.send_signal(signal.SIGINT)
                break
        rest, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 3, "".join(lines) + rest + stderr
    assert "error: interrupted; the sandbox was stopped" in stderr
    directory = re.search(r"env: (\S+)/env", "".join(lines))
    assert directory is not None
    assert sandbox_processes(Path(directory.group(1))) == []
