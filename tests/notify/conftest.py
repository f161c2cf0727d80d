"""Fixtures: a delivery dispatcher, structlog output captured as text, and the Kubernetes
API stand-in (as tests/run has it)."""

import io
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest
import structlog
from kubernetes import client
from notify_helpers import dispatchers

from rollout import kube
from rollout.notify.delivery import Dispatcher
from rollout.sandbox.kubeapi import KubeApiServer, kubeconfig


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    yield from dispatchers()


@pytest.fixture(autouse=True)
def logs() -> Iterator[io.StringIO]:
    """Everything logged through structlog during the test, rendered as JSON lines.

    Autouse: loggers are bound first under this uncached configuration, so one that a CLI
    test configured earlier (with caching) cannot capture our loggers for good.
    """
    out = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    try:
        yield out
    finally:
        structlog.reset_defaults()


@dataclass(frozen=True)
class Cluster:
    """The Kubernetes API stand-in as a test reaches it: an ApiClient and a kubeconfig."""

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
