"""Fixtures: a delivery dispatcher and structlog output captured as text (the API stand-in
comes from tests/conftest.py)."""

import io
from collections.abc import Iterator

import pytest
import structlog
from notify_helpers import dispatchers

from rollout.notify.delivery import Dispatcher


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
