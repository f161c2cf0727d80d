"""The Kubernetes API stand-in as tests reach it, preloaded with the sandbox's objects."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kubernetes import client

from rollout import kube
from rollout.sandbox.kubeapi import KubeApiServer, kubeconfig


@dataclass(frozen=True)
class Cluster:
    """The stand-in as a test reaches it: an ApiClient, and the kubeconfig for the CLI."""

    api: client.ApiClient
    kubeconfig: str


@contextmanager
def standin(directory: Path) -> Iterator[Cluster]:
    """A fresh stand-in with namespaces demo and default, holding demo/cello-app (the VS at
    100 % v1, and its DR); its kubeconfig is written into `directory`."""
    server = KubeApiServer().start()
    try:
        server.create_namespaces(["demo", "default"])
        objects = resources.files("rollout") / "data" / "sandbox-cello-app.yaml"
        with resources.as_file(objects) as path:
            server.load(path)
        config = directory / "kubeconfig"
        config.write_text(kubeconfig(server.url))
        yield Cluster(kube.api_client(str(config)), str(config))
    finally:
        server.stop()
