"""Helpers and fixtures of the controller tests (conftest.py re-exports the fixtures): a
real sandbox (Cello apps, mesh router, Prometheus, load) shared by the session, a fresh
Kubernetes API stand-in per test that records every API call made to it, and `rollout
controller` started as real processes.

The mesh router gives every version a fixed share of the load (v1 50 %, v2 and v3 25 %
each), so a canary is measured on enough requests from its first step whatever weight the
VirtualService holds; the tests read what the controller wrote from the stand-in's write
history instead.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout import kube
from rollout.sandbox import kubeapi
from rollout.sandbox.apps import AppVersion, CelloApp
from rollout.sandbox.kubeapi import KubeApiServer, kubeconfig
from rollout.sandbox.load import LoadGenerator
from rollout.sandbox.mesh import Destination, MeshRouter
from rollout.sandbox.prometheus import PrometheusServer

HERE = Path(__file__).parent
NAMESPACE = "demo"
LEASE_NAMESPACE = "cello-rollout"
LEASE_SECONDS = 3.0
WINDOW_S = 10
VERSIONS = (AppVersion("v1"), AppVersion("v2"), AppVersion("v3", error_rate=0.5))
MESH_WEIGHTS = {"v1": 50, "v2": 25, "v3": 25}
ROLLOUT = str(Path(sys.executable).with_name("rollout"))

# (user agent, method, path) of every request any stand-in of this session served.
API_CALLS: list[tuple[str, str, str]] = []


@pytest.fixture(scope="session", autouse=True)
def record_api_calls() -> Iterator[None]:
    """Record each request the stand-in serves (the RBAC test compares them with deploy/)."""
    original = kubeapi._Handler._dispatch

    def dispatch(self: Any, method: str) -> None:
        API_CALLS.append((self.headers.get("User-Agent", ""), method, self.path))
        original(self, method)

    kubeapi._Handler._dispatch = dispatch  # type: ignore[method-assign]
    yield
    kubeapi._Handler._dispatch = original  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def prometheus_url() -> Iterator[str]:
    """The sandbox's Prometheus, once it holds a full analysis window under load."""
    with ExitStack() as stack:
        apps = {spec.version: stack.enter_context(CelloApp(spec)) for spec in VERSIONS}
        destinations = [Destination(version, app.url) for version, app in apps.items()]
        mesh = stack.enter_context(MeshRouter(NAMESPACE, "cello-app", destinations, MESH_WEIGHTS))
        targets = [app.scrape_target() for app in apps.values()] + [mesh.scrape_target()]
        prometheus = stack.enter_context(PrometheusServer(targets))
        load = stack.enter_context(LoadGenerator(mesh.url, 40))
        _wait_for_window(prometheus.url, load.started_at)
        yield prometheus.url


def _wait_for_window(url: str, load_started_at: float) -> None:
    deadline = time.monotonic() + WINDOW_S + 60
    while time.monotonic() < deadline:
        reply = requests.get(
            f"{url}/api/v1/query", params={"query": "min(timestamp(up))"}, timeout=5
        ).json()
        result = reply["data"]["result"]
        if result and float(result[0]["value"][1]) >= load_started_at + WINDOW_S + 2:
            return
        time.sleep(0.5)
    raise TimeoutError("Prometheus had no full window under load")


@dataclass
class Cluster:
    """A stand-in with the test objects, reached by the client and by processes."""

    server: KubeApiServer
    kubeconfig: str
    api: client.ApiClient
    prometheus_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    http: dict[str, str] = field(default_factory=dict)
    logs: Path = Path()

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def controller(self, name: str, **env_vars: str) -> subprocess.Popen[bytes]:
        """Start `rollout controller` (lease of LEASE_SECONDS) logging to logs/<name>.log;
        its HTTP endpoints are on `self.http[name]`."""
        port = _free_port()
        self.http[name] = f"http://127.0.0.1:{port}"
        argv = [
            ROLLOUT, "controller", "--kubeconfig", self.kubeconfig,
            "--prometheus", self.prometheus_url, "--lease-namespace", LEASE_NAMESPACE,
            "--lease-duration", str(LEASE_SECONDS), "--address", "127.0.0.1",
            "--port", str(port),
        ]  # fmt: skip
        env = {**os.environ, **env_vars, "POD_NAME": name, "PYTHONUNBUFFERED": "1"}
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.processes.append(proc)
        return proc

    def rollout(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the `rollout` command against this cluster."""
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        return subprocess.run(
            [ROLLOUT, *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    def get(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            "rollout.cello.dev", "v1alpha1", NAMESPACE, "canaryrollouts", name
        )
        return obj

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def wait_for(self, what: str, check: Callable[[], bool], timeout_s: float = 60) -> float:
        """Poll `check` until it holds; returns when (monotonic)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return time.monotonic()
            time.sleep(0.1)
        raise TimeoutError(f"{what} not within {timeout_s}s; logs in {self.logs}")

    def weight_writes(self, virtual_service: str) -> list[int]:
        """The canary weights of every write that changed the VirtualService, in order."""
        path = f"apis/networking.istio.io/v1/namespaces/{NAMESPACE}/virtualservices/"
        url = f"{self.server.url}/_sandbox/history/{path}{virtual_service}"
        items = requests.get(url, timeout=5).json()["items"]
        weights = []
        for item in items:
            if item["changed"] and item["verb"] != "create":
                route = item["object"]["spec"]["http"][0]["route"]
                weights.append(int(route[1].get("weight", 0)))
        return weights

    def lease_holder(self) -> str:
        """The Lease's holder ("" when free or not created yet)."""
        try:
            lease = client.CoordinationV1Api(self.api).read_namespaced_lease(
                "cello-rollout-controller", LEASE_NAMESPACE
            )
        except ApiException as exc:
            if exc.status == 404:
                return ""
            raise
        return str(lease.spec.holder_identity or "")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def cluster(prometheus_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """A fresh stand-in with the cello-app objects; every controller started is killed."""
    server = KubeApiServer().start()
    found = None
    try:
        server.create_namespaces([NAMESPACE, LEASE_NAMESPACE])
        server.load(HERE / "objects.yaml")
        config = tmp_path / "kubeconfig"
        config.write_text(kubeconfig(server.url, NAMESPACE))
        found = Cluster(server, str(config), kube.api_client(str(config)), prometheus_url)
        found.logs = tmp_path
        yield found
    finally:
        for proc in found.processes if found else []:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        server.stop()
