"""Fixtures for the Kubernetes API stand-in: one in-process server for the session, a fresh
namespace per test, the kubeconfig it is reached through, and kubectl and client handles.

The server runs in a thread of the test process (fast, and a test can look at its state);
`test_sandbox_cli.py` starts the detached process the way users do.
"""

import itertools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubeapi_helpers import Kubectl
from kubernetes import client

from rollout import kube
from rollout.sandbox.kubeapi import KubeApiServer, kubeconfig

_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def kube_server() -> Iterator[KubeApiServer]:
    """The stand-in on a free loopback port, for the whole session."""
    server = KubeApiServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kubeconfig_path(kube_server: KubeApiServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kube") / "kubeconfig"
    path.write_text(kubeconfig(kube_server.url))
    return path


@pytest.fixture
def namespace(kube_server: KubeApiServer) -> str:
    """A namespace of its own for each test, so tests never see each other's objects."""
    name = f"test-{next(_namespaces)}"
    kube_server.create_namespaces([name])
    return name


@pytest.fixture
def api_client(kubeconfig_path: Path) -> client.ApiClient:
    return kube.api_client(str(kubeconfig_path))


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def kubectl(
    kubeconfig_path: Path, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Kubectl:
    """Run the real kubectl against the stand-in in this test's namespace (never raises)."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig_path)}
    env["KUBECACHEDIR"] = str(tmp_path_factory.getbasetemp() / "kubectl-cache")

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = ["kubectl", "-n", namespace, *args]
        return subprocess.run(
            argv, env=env, input=stdin, capture_output=True, text=True, timeout=30
        )

    return run
