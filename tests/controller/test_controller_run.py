"""`rollout controller` as a real process against the sandbox, driven by `rollout start`.

Must-show 1 and 2: a healthy canary ends Succeeded (`start --wait` exits 0), a faulty one
RolledBack (exit 1), and the VirtualService's write history shows each step once, in order.
"""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from controller_helpers import HERE, Cluster

STEPS = [20, 40, 60, 80, 100]
TARGET = ["-n", "demo", "--stable", "v1"]


def start(
    cluster: Cluster, name: str, vs: str, canary: str, policy: str = "policy"
) -> tuple[int, str]:
    done = cluster.rollout(
        "start", name, "--virtual-service", vs, "--canary", canary, *TARGET, "--wait",
        "--timeout", "90", "--policy", str(HERE / f"{policy}.yaml"),
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


@contextmanager
def hook() -> Iterator[tuple[str, list[str]]]:
    """A webhook receiver on a free port: its URL and the bodies it received."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()


def test_healthy_canary_is_promoted_and_start_exits_0(cluster: Cluster) -> None:
    cluster.controller("a")
    code, output = start(cluster, "cello-app", "cello-app", "v2")
    assert code == 0, output
    status = cluster.status("cello-app")
    assert status["phase"] == "Succeeded"
    assert status["canaryWeight"] == 100
    assert status["lastAnalysis"]["verdict"] == "pass"
    assert status["observedGeneration"] == cluster.get("cello-app")["metadata"]["generation"]
    assert cluster.weight_writes("cello-app") == STEPS
    http = cluster.http["a"]
    assert requests.get(f"{http}/healthz", timeout=5).status_code == 200
    assert requests.get(f"{http}/readyz", timeout=5).status_code == 200
    metrics = requests.get(f"{http}/metrics", timeout=5).text
    labels = 'name="cello-app",namespace="demo"'
    assert f'cello_rollout_phase{{{labels},phase="Succeeded"}} 1.0' in metrics
    assert f"cello_rollout_canary_weight{{{labels}}} 100.0" in metrics
    assert "cello_rollout_promotions_total 1.0" in metrics
    assert "cello_rollout_analysis_duration_seconds_count 4.0" in metrics
    assert "cello_rollout_leader 1.0" in metrics


def test_faulty_canary_is_rolled_back_and_start_exits_1(cluster: Cluster) -> None:
    with hook() as (url, received):
        cluster.controller("a", HOOK_URL=url, HOOK_KEY="test-key")
        code, output = start(cluster, "faulty", "cello-app-faulty", "v3", "policy-notify")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any("RolledBack" in b for b in received):
            time.sleep(0.1)
    # The webhook heard about it, from the CanaryRollout.
    rolled_back = [json.loads(b) for b in received if "RolledBack" in b]
    assert rolled_back and "canaryrollouts/faulty" in rolled_back[0]["source"]
    assert code == 1, output
    status = cluster.status("faulty")
    assert status["phase"] == "RolledBack"
    assert status["failedChecks"] == 1
    metric = status["lastAnalysis"]["metrics"][0]
    assert metric["verdict"] == "fail" and metric["canary"] > 0.05
    assert cluster.weight_writes("cello-app-faulty") == [20, 0]
