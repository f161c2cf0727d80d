"""Fixtures for the analysis tests: one real sandbox shared by the whole session (see
analysis_helpers.py for what runs in it), and `analyze`, which runs the real CLI against it.
"""

from collections.abc import Iterator

import pytest
from analysis_helpers import (
    Analysis,
    AnalyzeCli,
    Sandbox,
    run_analyze,
    running_sandbox,
    version_flags,
)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """Started once (~25 s, most of it filling the first analysis window), stopped at the end."""
    with running_sandbox() as running:
        yield running


@pytest.fixture
def analyze(sandbox: Sandbox) -> AnalyzeCli:
    """`analyze(policy, canary, ...)` against the sandbox's Prometheus."""

    def run(policy: str, canary: str, stable: str = "v1", output: str = "json") -> Analysis:
        flags = version_flags(canary, stable)
        return run_analyze(sandbox.prometheus.url, policy, *flags, output=output)

    return run
