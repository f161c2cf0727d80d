"""Helpers for the end-to-end tests: the complete sandbox started through `runner.up` (the
code `rollout sandbox up` runs), `rollout run` as a real process, and what the stand-in
recorded about every write to the VirtualService.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from rollout.pids import alive
from rollout.sandbox import runner
from rollout.store import ANNOTATION

ROLLOUT = str(Path(sys.executable).with_name("rollout"))
ROOT = Path(__file__).resolve().parents[2]
DEMO_POLICY = ROOT / "policies" / "demo.yaml"
TARGET_FLAGS = ("-n", "demo", "--virtual-service", "cello-app", "--stable", "v1", "--canary", "v2")
VS_PATH = "apis/networking.istio.io/v1/namespaces/demo/virtualservices/cello-app"
RUN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Sandbox:
    """A running sandbox as the tests reach it."""

    directory: Path

    @property
    def endpoints(self) -> dict[str, str]:
        return runner.endpoints(self.directory)

    @property
    def env(self) -> dict[str, str]:
        """The environment a user gets by sourcing D/env."""
        lines = (self.directory / "env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines)

    def pid(self, component: str) -> int:
        return int((self.directory / f"{component}.pid").read_text())

    def canary_writes(self) -> list[int]:
        """v2's weight after each write to the VirtualService, oldest first (from the
        stand-in's write history: every write, even one a killed process made)."""
        url = f"{self.endpoints['kube']}/_sandbox/history/{VS_PATH}"
        items = requests.get(url, timeout=10).json()["items"]
        return [_canary_weight(item["object"]) for item in items]

    def virtual_service(self) -> dict[str, Any]:
        vs: dict[str, Any] = requests.get(f"{self.endpoints['kube']}/{VS_PATH}", timeout=10).json()
        return vs

    def weights(self) -> tuple[int, int]:
        """(v1, v2) weights in the VirtualService now."""
        route = self.virtual_service()["spec"]["http"][0]["route"]
        by_subset = {d["destination"]["subset"]: d.get("weight", 0) for d in route}
        return by_subset["v1"], by_subset["v2"]

    def stored_run(self) -> dict[str, Any] | None:
        """The run `rollout run` stored on the VirtualService (state and holder), if any."""
        annotations = self.virtual_service()["metadata"].get("annotations") or {}
        stored = annotations.get(ANNOTATION)
        return None if stored is None else dict(json.loads(stored))


def _canary_weight(vs: dict[str, Any]) -> int:
    route = vs["spec"]["http"][0]["route"]
    weight: int = next(d.get("weight", 0) for d in route if d["destination"]["subset"] == "v2")
    return weight


MakeSandbox = Callable[..., Sandbox]


def sandbox_processes(directory: Path) -> list[int]:
    """Every process on the machine started for the sandbox in `directory` (children
    included: they inherit the marker), found by the marker in its environment."""
    mark = f"{runner.MARKER}={directory.resolve()}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark in environ.read_bytes().split(b"\0") and alive(int(environ.parent.name)):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


@contextmanager
def running_sandbox(
    directory: Path, components: str | None = None, **settings: Any
) -> Iterator[Sandbox]:
    """The complete sandbox in `directory`; on exit it is stopped and nothing may be left."""
    config = runner.SandboxConfig(directory, **settings)
    runner.up(config, runner.parse_components(components))
    try:
        yield Sandbox(directory)
    finally:
        runner.down(directory)
    assert sandbox_processes(directory) == []


@dataclass
class Run:
    """One `rollout run` process."""

    proc: "subprocess.Popen[str]"

    def finish(self, timeout: float = RUN_TIMEOUT_S) -> tuple[int, dict[str, Any] | None, str]:
        """Wait for the exit: (code, the JSON decision record if printed, stderr)."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, (json.loads(out) if out.strip() else None), err


def start_run(sandbox: Sandbox, policy: Path = DEMO_POLICY, *extra: str) -> Run:
    """`rollout run TARGET --policy P --output json` against the sandbox, as CI runs it."""
    argv = [ROLLOUT, "run", *TARGET_FLAGS, "--policy", str(policy), "--output", "json", *extra]
    env = os.environ | sandbox.env
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    return Run(proc)


def run_to_end(
    sandbox: Sandbox, policy: Path = DEMO_POLICY
) -> tuple[int, dict[str, Any] | None, str]:
    return start_run(sandbox, policy).finish()


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Poll `condition` every 50 ms (no fixed sleeps: a slow machine only waits longer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or condition}")


def kill(pid: int) -> None:
    """SIGKILL, no goodbye: what an OOM killer or a cancelled CI job does."""
    os.kill(pid, signal.SIGKILL)


def collapse(weights: Sequence[int]) -> list[int]:
    """Runs of one weight as one (state saves rewrite the annotation, not the weights)."""
    return [w for i, w in enumerate(weights) if i == 0 or weights[i - 1] != w]
