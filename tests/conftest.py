"""Fixtures shared by every test directory."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from standin import Cluster, standin


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh API stand-in holding demo/cello-app (see standin.py)."""
    with standin(tmp_path) as reached:
        yield reached
