"""Fixtures for the end-to-end tests: complete sandboxes (kube stand-in, Cello apps v1/v2,
mesh, Prometheus, load) in temporary directories, each stopped at the end with nothing left
running. One healthy sandbox is shared by the tests of a module that leave it healthy;
faulty or load-less ones are started per test (about 8 s each).
"""

import itertools
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import MakeSandbox, Sandbox, running_sandbox


@pytest.fixture(scope="module")
def healthy_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """v1 and v2 healthy under a steady load, shared by a module's tests."""
    with running_sandbox(tmp_path_factory.mktemp("sandbox")) as sandbox:
        yield sandbox


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[MakeSandbox]:
    """`make_sandbox(components=None, v2_error_rate=..., ...)`: a sandbox for this test."""
    numbers = itertools.count()
    with ExitStack() as stack:

        def make(components: str | None = None, **settings: Any) -> Sandbox:
            directory = tmp_path / f"sandbox-{next(numbers)}"
            return stack.enter_context(running_sandbox(directory, components, **settings))

        yield make
