"""Fixtures of the standalone-run tests (the stand-in comes from tests/conftest.py)."""

import pytest
from kubernetes import client
from standin import Cluster


@pytest.fixture
def api(cluster: Cluster) -> client.ApiClient:
    """The ApiClient of `cluster`."""
    return cluster.api
