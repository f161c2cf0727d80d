"""`rollout demo`: the first thing a newcomer runs. A complete canary on a local sandbox.

Sandbox up in a temporary directory, then exactly what `rollout run` does (the same
`standalone.prepare`/`drive`, in this process) with `policies/demo.yaml` on
demo/cello-app v1 -> v2, then the verdict and a summary of the decision record, then sandbox
down, whatever happened (the caller turns Ctrl-C into KeyboardInterrupt, which unwinds
through here). `--faulty` makes v2 fail in a way the policy must catch.
"""

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rollout import kube, report, standalone
from rollout.driver import Driver
from rollout.engine import Phase, RolloutState
from rollout.errors import ExitCode
from rollout.policy import load_policy
from rollout.sandbox import runner
from rollout.target import Target
from rollout.view import View

POLICY = Path(__file__).resolve().parents[1] / "policies" / "demo.yaml"
TARGET = Target(
    namespace=runner.NAMESPACE,
    virtual_service=runner.VIRTUAL_SERVICE,
    stable=runner.STABLE,
    canary=runner.CANARY,
)
# What each --faulty does to v2: (share of 5xx answers, added latency in ms).
FAULTS: dict[str | None, tuple[float, float]] = {
    None: (0.0, 0.0),
    "errors": (0.3, 0.0),
    "latency": (0.0, 300.0),
}


@dataclass(frozen=True)
class DemoResult:
    """How the demo's canary ended, and its decision record (as `rollout run` reports it)."""

    state: RolloutState
    record: dict[str, Any]

    @property
    def exit_code(self) -> ExitCode:
        """`rollout run`'s exit code for the same outcome."""
        return ExitCode(self.record["exitCode"])


def run(
    faulty: str | None,
    echo: Callable[[str], None],
    make_view: Callable[[Driver], View],
    keep: bool = False,
) -> DemoResult:
    """Run the whole demo; the sandbox is stopped on the way out unless `keep`."""
    directory = Path(tempfile.mkdtemp(prefix="rollout-demo-"))
    try:
        error_rate, latency_ms = FAULTS[faulty]
        config = runner.SandboxConfig(directory, v2_error_rate=error_rate, v2_latency_ms=latency_ms)
        for line in runner.up(config, runner.parse_components(None)):
            echo(line)
        return _canary(directory, echo, make_view)
    finally:
        _finish(directory, keep, echo)


def _canary(
    directory: Path, echo: Callable[[str], None], make_view: Callable[[Driver], View]
) -> DemoResult:
    prometheus_url = runner.endpoints(directory)["prometheus"]
    options = standalone.RunOptions(prometheus_url)
    api = kube.api_client(str(directory / "kubeconfig"))
    driver = standalone.prepare(load_policy(str(POLICY)), TARGET, api, options)
    echo(f"canary: {TARGET} with policy {POLICY.name}")
    show = make_view(driver)
    try:
        state = standalone.drive(driver, on_change=show)
    finally:
        show.close()  # a live view gives the terminal back before the summary
    result = DemoResult(state, report.record(driver))
    for line in summary(result.record):
        echo(line)
    return result


def _finish(directory: Path, keep: bool, echo: Callable[[str], None]) -> None:
    if keep:
        stop = f"rollout sandbox down --dir {directory}"
        echo(f"sandbox kept: source {directory / 'env'}; stop it with: {stop}")
        return
    runner.down(directory)
    shutil.rmtree(directory, ignore_errors=True)
    echo("sandbox stopped")


def canary_exposure(record: dict[str, Any]) -> float | None:
    """Seconds from the first transition that gave the canary traffic to the one that took
    it all back (RolledBack or Failed), from the decision record; None if never taken back.

    The first is recorded before its weight is written and the last after the rollback is
    written, so this bounds from above how long the canary's weight was in the cluster.
    """
    transitions = record["transitions"]
    first = next((t for t in transitions if t["weight"] > 0), None)
    back = next((t for t in transitions if t["phase"] in ("RolledBack", "Failed")), None)
    if first is None or back is None:
        return None
    return _seconds(first["at"], back["at"])


def summary(record: dict[str, Any]) -> list[str]:
    """The verdict and the decision record in a few lines: transitions, checks, timing."""
    transitions = record["transitions"]
    start = transitions[0]["at"] if transitions else None
    lines = [f"verdict: {record['phase']} (exit {record['exitCode']}): {record['reason']}"]
    for t in transitions:
        offset = _seconds(start, t["at"]) if start else 0.0
        lines.append(f"  +{offset:5.1f}s {t['phase']:<11} canary {t['weight']:>3}%")
    kinds = [check["kind"] for check in record["checks"]]
    failed = [c for c in record["checks"] if c["verdict"] == "fail"]
    lines.append(
        f"checks: {kinds.count('step')} step, {kinds.count('guard')} guard, {len(failed)} failed"
    )
    for check in failed[:1]:
        lines.append(f"  first failure ({check['kind']} check): {check['reason']}")
    exposure = canary_exposure(record)
    if exposure is not None:
        lines.append(f"canary had traffic for {exposure:.1f}s before all of it was back on stable")
    elif record["phase"] == str(Phase.SUCCEEDED) and start:
        lines.append(f"promoted {_seconds(start, transitions[-1]['at']):.1f}s after the start")
    return lines


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
