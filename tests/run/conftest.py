"""A Kubernetes API stand-in preloaded with the sandbox's cello-app objects, per test."""

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest
from kubernetes import client

from rollout import kube
from rollout.sandbox.kubeapi import KubeApiServer, kubeconfig


@dataclass(frozen=True)
class Cluster:
    """The stand-in as a test reaches it: an ApiClient, and the kubeconfig for the CLI."""

    api: client.ApiClient
    kubeconfig: str


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh stand-in holding demo/cello-app (VS at 100 % v1, and its DR)."""
    server = KubeApiServer().start()
    try:
        server.create_namespaces(["demo"])
        objects = resources.files("rollout") / "data" / "sandbox-cello-app.yaml"
        with resources.as_file(objects) as path:
            server.load(path)
        config = tmp_path / "kubeconfig"
        config.write_text(kubeconfig(server.url))
        yield Cluster(kube.api_client(str(config)), str(config))
    finally:
        server.stop()


@pytest.fixture
def api(cluster: Cluster) -> client.ApiClient:
    """The ApiClient of `cluster`."""
    return cluster.api
