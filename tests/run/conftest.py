"""A Kubernetes API stand-in preloaded with the sandbox's cello-app objects, per test."""

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from kubernetes import client

from rollout import kube
from rollout.sandbox.kubeapi import KubeApiServer, kubeconfig


@pytest.fixture
def api(tmp_path: Path) -> Iterator[client.ApiClient]:
    """An ApiClient on a fresh stand-in holding demo/cello-app (VS at 100 % v1, and its DR)."""
    server = KubeApiServer().start()
    try:
        server.create_namespaces(["demo"])
        objects = resources.files("rollout") / "data" / "sandbox-cello-app.yaml"
        with resources.as_file(objects) as path:
            server.load(path)
        config = tmp_path / "kubeconfig"
        config.write_text(kubeconfig(server.url))
        yield kube.api_client(str(config))
    finally:
        server.stop()
