"""Delivery off the decision path: a bounded queue drained by one worker thread.

`submit` only appends to the queue (or drops, counted and logged, when it is full), so a
slow or dead receiver can never delay a step, a rollback or a promotion. The queue is
ordered by when each job is due: a failed attempt goes back in with its backoff as due
time instead of the worker sleeping on it, so one dead receiver costs the others no more
than its per-request timeout. Retries back off exponentially with jitter, so receivers that
come back are not hit by every sender at once.
"""

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import structlog
from prometheus_client import Counter

from rollout.notify.events import NotificationEvent

log = structlog.get_logger(__name__)

NOTIFICATIONS = Counter(
    "rollout_notifications",
    "Notification deliveries by sink type and outcome: delivered, retried (one per retry), "
    "failed (gave up), dropped (queue full or closed).",
    ["sink", "outcome"],
)
DEFAULT_CAPACITY = 256


class DeliveryError(Exception):
    """One failed attempt. The message is safe to log: it never holds a URL or a key."""

    def __init__(self, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.retryable = retryable


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts in all, and the backoff between them (seconds)."""

    attempts: int
    backoff: float
    max_backoff: float

    def delay(self, attempt: int, jitter: float) -> float:
        """The wait after failed attempt `attempt` (1-based): backoff doubled per attempt,
        capped, then scaled into [50 %, 100 %] by `jitter` in [0, 1)."""
        ceiling = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return ceiling * (0.5 + jitter / 2)


class Sink(Protocol):
    """A receiver of notifications. `send` makes one attempt, bounded by its own timeout,
    and raises DeliveryError when it fails."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def retry(self) -> RetryPolicy: ...

    def send(self, event: NotificationEvent) -> None: ...


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    sink: Sink = field(compare=False)
    event: NotificationEvent = field(compare=False)
    attempt: int = field(default=1, compare=False)


class Dispatcher:
    """The queue and its worker; one per process, shared by every rollout it drives."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._capacity = capacity
        self._clock = clock
        self._jitter = jitter
        self._jobs: list[_Job] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = float("inf")
        self._worker = threading.Thread(target=self._run, name="notify-delivery", daemon=True)

    def start(self) -> "Dispatcher":
        """Start the worker thread; returns self."""
        self._worker.start()
        return self

    def submit(self, sink: Sink, event: NotificationEvent) -> bool:
        """Queue one delivery and return at once; False when it was dropped."""
        with self._cond:
            accepted = not self._closing and len(self._jobs) < self._capacity
            if accepted:
                heapq.heappush(self._jobs, _Job(self._clock(), next(self._seq), sink, event))
                self._cond.notify()
        if not accepted:
            NOTIFICATIONS.labels(sink.type, "dropped").inc()
            _logger(sink, event).warning("notify.dropped", capacity=self._capacity)
        return accepted

    def close(self, timeout: float) -> None:
        """Stop taking jobs and give the queued ones (retries included) up to `timeout`
        seconds to be delivered; what is left then is abandoned, counted as dropped."""
        with self._cond:
            self._closing = True
            self._deadline = self._clock() + timeout
            self._cond.notify()
        if self._worker.is_alive():
            self._worker.join(timeout + 1)

    def _run(self) -> None:
        while (job := self._next()) is not None:
            self._attempt(job)
        with self._cond:
            abandoned, self._jobs = self._jobs, []
        for job in abandoned:
            NOTIFICATIONS.labels(job.sink.type, "dropped").inc()
            _logger(job.sink, job.event).warning("notify.abandoned", attempt=job.attempt)

    def _next(self) -> _Job | None:
        """The next due job; None once closing and the queue is empty or out of time."""
        with self._cond:
            while True:
                now = self._clock()
                if self._closing and (not self._jobs or now >= self._deadline):
                    return None
                if self._jobs and self._jobs[0].due <= now:
                    return heapq.heappop(self._jobs)
                until = min(self._jobs[0].due if self._jobs else float("inf"), self._deadline)
                self._cond.wait(None if until == float("inf") else until - now)

    def _attempt(self, job: _Job) -> None:
        """One attempt; on a retryable failure the job goes back in, due after its backoff."""
        sink, logger = job.sink, _logger(job.sink, job.event).bind(attempt=job.attempt)
        try:
            sink.send(job.event)
        except DeliveryError as exc:
            if exc.retryable and job.attempt < sink.retry.attempts:
                delay = sink.retry.delay(job.attempt, self._jitter())
                NOTIFICATIONS.labels(sink.type, "retried").inc()
                logger.warning("notify.retry", error=str(exc), delay=round(delay, 3))
                self._requeue(replace(job, due=self._clock() + delay, attempt=job.attempt + 1))
                return
            NOTIFICATIONS.labels(sink.type, "failed").inc()
            logger.error("notify.failed", error=str(exc))
            return
        except Exception as exc:  # a bug must not kill the worker; the type alone is safe
            NOTIFICATIONS.labels(sink.type, "failed").inc()
            logger.error("notify.failed", error=type(exc).__name__)
            return
        NOTIFICATIONS.labels(sink.type, "delivered").inc()
        logger.info("notify.delivered")

    def _requeue(self, job: _Job) -> None:
        """A retry keeps the slot it already had, so it may exceed the capacity by the one
        job the worker holds."""
        with self._cond:
            heapq.heappush(self._jobs, replace(job, seq=next(self._seq)))
            self._cond.notify()


def _logger(sink: Sink, event: NotificationEvent) -> structlog.typing.FilteringBoundLogger:
    rollout = event.where.rollout
    bound: structlog.typing.FilteringBoundLogger = log.bind(
        sink=sink.name,
        sink_type=sink.type,
        notification=event.kind,
        event_id=event.id,
        namespace=rollout.namespace,
        name=rollout.name,
    )
    return bound
