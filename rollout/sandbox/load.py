"""A steady stream of requests, bounded in rate and time, for the sandbox and the tests.

Requests leave at a fixed rate regardless of how slow answers are (an open-loop generator,
like real users): a pool of worker threads carries the in-flight ones, so a 300 ms canary
does not slow the stream down. When every worker is busy a tick is counted as `dropped`
rather than queued, so a stalled backend cannot make the stream burst afterwards.
"""

import argparse
import collections
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import requests
import structlog

from rollout import log as logging_setup
from rollout.sandbox.process import StopOnExit

log = structlog.get_logger(__name__)

REQUEST_TIMEOUT_S = 10.0


class LoadGenerator(StopOnExit):
    """GETs `paths` in turn on `base_url` at `rate` per second until stop() or `duration_s`."""

    def __init__(
        self,
        base_url: str,
        rate: float,
        paths: Sequence[str] = ("/", "/api/items"),
        duration_s: float | None = None,
        concurrency: int = 64,
    ):
        self._base_url = base_url.rstrip("/")
        self._interval = 1.0 / rate
        self._paths = list(paths)
        self._duration_s = duration_s
        self._slots = threading.BoundedSemaphore(concurrency)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="load")
        self._sessions = threading.local()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.statuses: collections.Counter[int] = collections.Counter()  # 0 = no answer
        self.dropped = 0
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="load-ticker", daemon=True)
        self._thread.start()
        log.info("load.started", url=self._base_url, rate=rate, duration_s=duration_s)

    @property
    def sent(self) -> int:
        with self._lock:
            return sum(self.statuses.values())

    def _run(self) -> None:
        start = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            if self._duration_s is not None and time.monotonic() - start >= self._duration_s:
                break
            if self._slots.acquire(blocking=False):
                path = self._paths[tick % len(self._paths)]
                self._pool.submit(self._request, path)
            else:
                with self._lock:
                    self.dropped += 1
            tick += 1
            # Sleep until the next tick's due time, so the rate does not drift.
            self._stop.wait(max(0.0, start + tick * self._interval - time.monotonic()))

    def _request(self, path: str) -> None:
        session: requests.Session | None = getattr(self._sessions, "session", None)
        if session is None:
            session = self._sessions.session = requests.Session()
        try:
            status = session.get(self._base_url + path, timeout=REQUEST_TIMEOUT_S).status_code
        except requests.RequestException:
            status = 0
        finally:
            self._slots.release()
        with self._lock:
            self.statuses[status] += 1

    def stop(self) -> None:
        """Stop sending and wait for the requests in flight."""
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        log.info("load.stopped", sent=self.sent, dropped=self.dropped)


def main(argv: list[str] | None = None) -> None:
    """Send the stream until `--duration` passes or SIGTERM (the `sandbox up` child process):
    bounded, so a forgotten sandbox does not load the machine for ever."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--rps", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    args = parser.parse_args(argv)
    logging_setup.configure(json=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    load = LoadGenerator(args.url, args.rps)
    stop.wait(args.duration)
    load.stop()


if __name__ == "__main__":
    main()
