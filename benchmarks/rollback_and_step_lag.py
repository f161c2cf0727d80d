"""Benchmark: time to roll back an error-injected canary, and how late steps start.

Run on demand (not part of `make test`):

    .venv/bin/python benchmarks/rollback_and_step_lag.py [--rounds 3]

Each round brings up the whole local sandbox and drives `rollout run` with
policies/demo.yaml as a real process, then reads the figures from its decision record:
- time to rollback: from the transition that first gave v2 traffic to the one that sent
  traffic back (RollingBack) and to the one confirming it was written (RolledBack), with v2
  answering 30 % 5xx;
- step lag: for a healthy v2, how long after its due time (step start + interval) each
  step's analysis ran.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from rollout.policy import load_policy
from rollout.sandbox import runner

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "demo.yaml"
TARGET = ["-n", "demo", "--virtual-service", "cello-app", "--stable", "v1", "--canary", "v2"]


def run_once(v2_error_rate: float) -> dict[str, Any]:
    """One sandbox, one `rollout run --output json`; the decision record."""
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp:
        directory = Path(tmp)
        config = runner.SandboxConfig(directory, v2_error_rate=v2_error_rate)
        runner.up(config, runner.parse_components(None))
        try:
            env = os.environ | dict(
                line.split("=", 1) for line in (directory / "env").read_text().splitlines()
            )
            rollout = Path(sys.executable).with_name("rollout")
            argv = [str(rollout), "run", *TARGET, "--policy", str(POLICY), "--output", "json"]
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        finally:
            runner.down(directory)
    if not done.stdout.strip():
        raise SystemExit(f"rollout run printed no record (exit {done.returncode}): {done.stderr}")
    record: dict[str, Any] = json.loads(done.stdout)
    return record


def _at(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["at"])


def time_to_rollback(record: dict[str, Any]) -> tuple[float, float]:
    """Seconds from v2's first traffic to RollingBack, and to RolledBack."""
    transitions = record["transitions"]
    first = next(t for t in transitions if t["weight"] > 0)
    back = next(t for t in transitions if t["phase"] == "RollingBack")
    done = next(t for t in transitions if t["phase"] == "RolledBack")
    start = _at(first)
    return (_at(back) - start).total_seconds(), (_at(done) - start).total_seconds()


def step_lags(record: dict[str, Any], interval_s: float) -> list[float]:
    """Seconds between each step's due time and the start of its analysis."""
    starts = {t["step"]: _at(t) for t in record["transitions"] if t["phase"] == "Progressing"}
    return [
        (_at(check) - starts[check["step"]]).total_seconds() - interval_s
        for check in record["checks"]
        if check["kind"] == "step" and check["step"] in starts
    ]


def _summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.2f} s, min {min(values):.2f} s, "
        f"max {max(values):.2f} s (n={len(values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    interval_s = load_policy(POLICY).spec.interval.total_seconds()

    to_rollback, to_stable, lags = [], [], []
    for i in range(rounds):
        faulty = run_once(v2_error_rate=0.3)
        if faulty["phase"] != "RolledBack":
            raise SystemExit(f"round {i + 1}: the faulty canary ended {faulty['phase']}")
        back, done = time_to_rollback(faulty)
        to_rollback.append(back)
        to_stable.append(done)
        healthy = run_once(v2_error_rate=0.0)
        lags += step_lags(healthy, interval_s)
        print(
            f"round {i + 1}: rollback decided {back:.2f} s and traffic on stable {done:.2f} s "
            f"after v2's first traffic; healthy run {healthy['phase']}",
            flush=True,
        )
    print(f"time to rollback decision (v2 30 % 5xx): {_summary(to_rollback)}")
    print(f"time to traffic back on stable:          {_summary(to_stable)}")
    print(f"step lag (analysis start - due time):    {_summary(lags)}")


if __name__ == "__main__":
    main()
