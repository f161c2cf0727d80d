"""Helpers for the analysis tests: the sandbox they share (Cello apps, mesh router,
Prometheus, load), waiting for Prometheus, and running the real `rollout analyze`.

The sandbox runs four versions of the example Cello app behind the mesh router, which
splits one steady request stream between them by weight:

- v1: healthy, the stable baseline (40 %)
- v2: answers 5xx at ERROR_RATE and adds DELAY_MS, the faulty canary (30 %)
- v3: healthy canary (29 %)
- v4: healthy canary that gets too little traffic to judge (1 %: ~9 requests per window)

So one traffic stream feeds both metric sources under test at once: the apps' own
`cello_http_*` series and the router's Istio series. The fixture returns only once
Prometheus holds a full analysis window of samples taken under load.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from rollout.sandbox.apps import AppVersion, CelloApp
from rollout.sandbox.load import LoadGenerator
from rollout.sandbox.mesh import Destination, MeshRouter
from rollout.sandbox.prometheus import PrometheusServer

NAMESPACE = "demo"
SERVICE = "cello-app"
WINDOW_S = 15  # the test policies' window
ERROR_RATE = 0.2
# In the middle of a wide bucket ((1000, 2500] ms for Istio and Cello alike): a scheduler stall
# on a busy machine would have to exceed 1.4 s to push 1 % of v2's requests past its upper
# bound. With 300 ms ((250, 500]) a single 200 ms stall of the proxy could move the p99.
DELAY_MS = 1100
LOAD_RATE = 60  # requests per second through the router
VERSIONS = (
    AppVersion("v1"),
    AppVersion("v2", error_rate=ERROR_RATE, delay_ms=DELAY_MS),
    AppVersion("v3"),
    AppVersion("v4"),
)
WEIGHTS = {"v1": 40, "v2": 30, "v3": 29, "v4": 1}
POLICIES = Path(__file__).parent / "policies"
# Generous: on a busy 2-core machine everything takes longer than on a laptop.
WINDOW_READY_TIMEOUT_S = WINDOW_S + 60


@dataclass(frozen=True)
class Sandbox:
    prometheus: PrometheusServer
    mesh: MeshRouter
    apps: dict[str, CelloApp]
    load: LoadGenerator


def query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's result vector."""
    reply = requests.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=10)
    reply.raise_for_status()
    result: list[dict[str, Any]] = reply.json()["data"]["result"]
    return result


@contextmanager
def running_sandbox() -> Iterator[Sandbox]:
    """The running sandbox; everything in it is stopped on exit, whatever happened."""
    with ExitStack() as stack:
        apps = {spec.version: stack.enter_context(CelloApp(spec)) for spec in VERSIONS}
        destinations = [Destination(version, app.url) for version, app in apps.items()]
        mesh = stack.enter_context(MeshRouter(NAMESPACE, SERVICE, destinations, WEIGHTS))
        targets = [app.scrape_target() for app in apps.values()] + [mesh.scrape_target()]
        prometheus = stack.enter_context(PrometheusServer(targets))
        prometheus.wait_targets_up()
        load = stack.enter_context(LoadGenerator(mesh.url, LOAD_RATE))
        wait_for_full_window(prometheus, load.started_at)
        yield Sandbox(prometheus, mesh, apps, load)


def wait_for_full_window(prometheus: PrometheusServer, load_started_at: float) -> None:
    """Poll until every target's latest scrape is a full window (plus a scrape and a
    margin) after the load started: from then on, the window ending "now" sees only
    steady traffic, so measured rates can be compared tightly with the set ones."""
    needed = load_started_at + WINDOW_S + 3
    deadline = time.monotonic() + WINDOW_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        result = query(prometheus.url, "min(timestamp(up))")
        if result and float(result[0]["value"][1]) >= needed:
            return
        time.sleep(0.5)
    raise TimeoutError(f"Prometheus had no full {WINDOW_S}s window under load in time")


@dataclass(frozen=True)
class Analysis:
    """What one `rollout analyze` run printed and returned."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.stdout)
        return report

    def metric(self, name: str) -> dict[str, Any]:
        (found,) = [m for m in self.report["metrics"] if m["metric"] == name]
        return found


AnalyzeCli = Callable[..., Analysis]


def version_flags(canary: str, stable: str = "v1") -> list[str]:
    """The flags that give the subsets' version label values directly (no cluster)."""
    return ["--stable-version", stable, "--canary-version", canary]


def run_analyze(prometheus_url: str, policy: str, *flags: str, output: str = "json") -> Analysis:
    """Run the installed `rollout analyze` as a user would, on subsets `stable`/`canary`."""
    rollout = Path(sys.executable).with_name("rollout")
    argv = [
        str(rollout), "analyze",
        "-n", NAMESPACE, "--virtual-service", SERVICE,
        "--stable", "stable", "--canary", "canary",
        "--policy", str(POLICIES / f"{policy}.yaml"),
        "--prometheus", prometheus_url,
        "--output", output,
        *flags,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "PROMETHEUS_URL")}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    return Analysis(done.returncode, done.stdout, done.stderr)
