"""Fixtures of the traffic tests: the Kubernetes API stand-in, one for the session (in a
thread of the test process), and a fresh namespace of it for each test.
"""

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_helpers import Cluster

from rollout.sandbox.kubeapi import KubeApiServer, kubeconfig

_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KubeApiServer, Path]]:
    """The stand-in and the kubeconfig that reaches it, as `rollout sandbox up` writes one."""
    server = KubeApiServer().start()
    config = tmp_path_factory.mktemp("traffic") / "kubeconfig"
    config.write_text(kubeconfig(server.url))
    try:
        yield server, config
    finally:
        server.stop()


@pytest.fixture
def cluster(stand_in: tuple[KubeApiServer, Path]) -> Cluster:
    """A namespace of its own for each test, so no test sees another's objects."""
    server, config = stand_in
    namespace = f"traffic-{next(_namespaces)}"
    server.create_namespaces([namespace])
    return Cluster(kubeconfig=config, namespace=namespace, server_url=server.url)
