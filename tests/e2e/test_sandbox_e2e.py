"""`rollout sandbox up` / `down` with every component, as a user runs them: D/env works,
Prometheus scrapes every target, the mesh follows a weight written to the VirtualService
within well under a second, and `down` leaves no process behind."""

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests
from e2e_helpers import ROLLOUT, Sandbox, sandbox_processes

from rollout import kube
from rollout.target import Target
from rollout.traffic.istio import router_for

pytestmark = pytest.mark.e2e

FOLLOW_BOUND_S = 1.0
TARGET = Target(namespace="demo", virtual_service="cello-app", stable="v1", canary="v2")


def rollout(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ROLLOUT, *args], capture_output=True, text=True, timeout=60, env=os.environ | (env or {})
    )


def destination(mesh_url: str) -> str:
    return requests.get(f"{mesh_url}/api/items", timeout=5).headers["X-Rollout-Destination"]


def seconds_until_v2_is_served(mesh_url: str) -> float:
    """From now until a request through the mesh reaches v2 (all do at 100 %)."""
    start = time.monotonic()
    while destination(mesh_url) != "v2":
        assert time.monotonic() - start < 10, "the mesh never followed the VirtualService"
    return time.monotonic() - start


def test_up_starts_everything_the_mesh_follows_the_vs_and_down_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "sandbox"
    up = rollout("sandbox", "up", "--dir", str(directory), "--rps", "10")
    try:
        assert up.returncode == 0, up.stderr
        sandbox = Sandbox(directory)
        env = sandbox.env
        assert set(env) == {"KUBECONFIG", "PROMETHEUS_URL", "MESH_URL"}
        targets = requests.get(f"{env['PROMETHEUS_URL']}/api/v1/targets", timeout=5).json()
        health = [t["health"] for t in targets["data"]["activeTargets"]]
        assert health == ["up"] * 3  # app v1, app v2, the mesh's Istio metrics
        assert destination(env["MESH_URL"]) == "v1"  # preloaded: 100 % v1
        router = router_for(kube.api_client(env["KUBECONFIG"]))
        assert router.set_canary_weight(TARGET, 100).written  # the clock starts at the write
        lag = seconds_until_v2_is_served(env["MESH_URL"])
        with capsys.disabled():
            print(f"\nmesh followed the VirtualService write in {lag:.2f}s")
        assert lag < FOLLOW_BOUND_S
    finally:
        down = rollout("sandbox", "down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr
    assert sandbox_processes(directory) == []
    assert list(directory.glob("*.pid")) == []
    assert not (directory / "prometheus").exists()  # its storage goes with it
