"""structlog set-up: readable console lines on a terminal, JSON elsewhere (in a cluster, CI)."""

import logging
import sys

import structlog


def configure(json: bool | None = None, level: int = logging.INFO) -> None:
    """Configure structlog once for the process; logs go to stderr so stdout stays for output."""
    if json is None:
        json = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
