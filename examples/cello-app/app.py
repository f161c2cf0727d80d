"""The example Cello service that cello-rollout's sandbox and tests deploy as v1, v2, ...

One version of a small service, with faults that can be dialled in so that a canary can be
made to fail analysis for a known reason:

- ``ERROR_RATE`` (0..1): the fraction of API requests answered 503. Which requests fail is
  decided by a counter, not by chance, so that over any run of n requests exactly
  ``floor(n * rate)`` fail and a measured error rate can be compared exactly with the set one.
- ``DELAY_MS``: latency added to every API request (not to ``/healthz`` or ``/metrics``).
- ``VERSION`` (returned in every body and header, so a router's choice is visible), ``HOST``,
  ``PORT``.

Each setting can also be given as a flag (``--error-rate 0.2``); flags win over env vars.
``app.enable_prometheus()`` serves Cello's ``cello_http_*`` metrics on ``/metrics``.
"""

import argparse
import asyncio
import itertools
import math
import os
from dataclasses import dataclass
from typing import Any

from cello import App, Response


@dataclass(frozen=True)
class Settings:
    """How this instance behaves; see the module docstring."""

    version: str
    host: str
    port: int
    error_rate: float
    delay_ms: float


def parse_settings() -> Settings:
    """Settings from flags, falling back to env vars, falling back to defaults."""
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-version", default=env.get("VERSION", "v1"))
    parser.add_argument("--host", default=env.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("PORT", "8080")))
    parser.add_argument("--error-rate", type=float, default=float(env.get("ERROR_RATE", "0")))
    parser.add_argument("--delay-ms", type=float, default=float(env.get("DELAY_MS", "0")))
    args, _ = parser.parse_known_args()
    if not 0 <= args.error_rate <= 1:
        parser.error(f"--error-rate must be within 0..1, got {args.error_rate}")
    if args.delay_ms < 0:
        parser.error(f"--delay-ms must not be negative, got {args.delay_ms}")
    return Settings(args.app_version, args.host, args.port, args.error_rate, args.delay_ms)


class FaultInjector:
    """Decides, request by request, whether to fail, spreading failures evenly.

    Request n (1-based) fails when floor(n * rate) grows at n: after n requests exactly
    floor(n * rate) have failed, with failures spaced as evenly as the rate allows (a
    rate of 0.2 fails every 5th request). `next()` on itertools.count is atomic in CPython,
    so concurrent handlers never share a number.
    """

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._counter = itertools.count(1)

    def should_fail(self) -> bool:
        n = next(self._counter)
        return math.floor(n * self._rate) > math.floor((n - 1) * self._rate)


def create_app(settings: Settings) -> App:
    """The Cello app: `/` and `/api/items` carry the faults, `/healthz` never does."""
    app = App()
    # cello-framework 1.4.1: when enable_prometheus() is the only middleware, its series carry
    # method="" path="", requests_in_progress goes negative and the duration histogram is
    # never exported. Any other middleware first restores them; security headers suit an API.
    app.enable_security_headers()
    app.enable_prometheus()
    faults = FaultInjector(settings.error_rate)
    headers = {"X-Version": settings.version}

    async def answer(body: dict[str, Any]) -> Response:
        if settings.delay_ms:
            await asyncio.sleep(settings.delay_ms / 1000)
        if faults.should_fail():
            error = {"error": "injected fault", "version": settings.version}
            return versioned(Response.json(error, status=503))
        return versioned(Response.json({"version": settings.version, **body}))

    def versioned(response: Response) -> Response:
        for name, value in headers.items():
            response.set_header(name, value)
        return response

    @app.get("/")
    async def home(request: Any) -> Response:
        return await answer({"service": "cello-app"})

    @app.get("/api/items")
    async def items(request: Any) -> Response:
        return await answer({"items": [{"id": 1, "name": "bow"}, {"id": 2, "name": "rosin"}]})

    @app.get("/healthz")
    def healthz(request: Any) -> Response:
        return versioned(Response.json({"status": "ok", "version": settings.version}))

    return app


def main() -> None:
    settings = parse_settings()
    # One worker: the fault counter lives in this process, and several workers would each
    # count on their own (still the same rate overall, but no longer exactly spaced).
    create_app(settings).run(host=settings.host, port=settings.port, workers=1, logs=False)


if __name__ == "__main__":
    main()
