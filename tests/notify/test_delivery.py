"""Must-show 2: receivers that are down, slow (answer after 5 s) or failing (500) are retried
as configured, and never slow the caller: `notify()` returns at once, and a rollout's
decisions take as long with them as with a healthy receiver."""

import io
import itertools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from notify_helpers import T0, WHERE, driver, notifier, slack_sink, webhook_sink
from notify_receivers import dead_url, receiver
from prometheus_client import REGISTRY

from rollout.engine import Phase, Start, Tick
from rollout.notify.delivery import Dispatcher, RetryPolicy
from rollout.notify.events import NotificationEvent
from rollout.notify.http import HttpSink

RETRY = RetryPolicy(attempts=3, backoff=0.2, max_backoff=1.0)
SLOW_S = 5.0  # the slow receiver answers after this long
TIMEOUT_S = 0.5  # ... and the sinks give up on an attempt after this long


def counted(sink: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("rollout_notifications_total", {"sink": sink, "outcome": outcome})
        or 0.0
    )


def log_lines(logs: io.StringIO, event: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    return [line for line in lines if line["event"] == event]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def event() -> NotificationEvent:
    return NotificationEvent("promoted", T0, WHERE, "Succeeded", 2, 100, "all checks passed", None)


def test_a_receiver_answering_500_sees_every_configured_attempt_of_the_same_event(
    dispatcher: Dispatcher, logs: io.StringIO
) -> None:
    before = counted("webhook", "retried"), counted("webhook", "failed")
    with receiver(status=500) as hook:
        dispatcher.submit(webhook_sink(hook.url, RETRY), event())
        seen = hook.wait_for(3)
        wait_until(lambda: bool(log_lines(logs, "notify.failed")))
        time.sleep(0.3)  # no fourth attempt follows
        assert hook.attempts == 3
    ids = {json.loads(request.body)["id"] for request in seen}
    assert len(ids) == 1  # a retry is the same event: receivers can drop duplicates
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(seen)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # backoff 0.2 s doubling, jitter in [50 %, 100 %]
    assert [line["error"] for line in log_lines(logs, "notify.retry")] == ["HTTP 500"] * 2
    assert (counted("webhook", "retried"), counted("webhook", "failed")) == (
        before[0] + 2,
        before[1] + 1,
    )


def test_a_receiver_that_answers_after_5s_is_timed_out_and_retried(
    dispatcher: Dispatcher, logs: io.StringIO
) -> None:
    with receiver(delay=SLOW_S) as hook:
        started = time.monotonic()
        dispatcher.submit(slack_sink(hook.url, RETRY, timeout=TIMEOUT_S), event())
        wait_until(lambda: bool(log_lines(logs, "notify.failed")))
        elapsed = time.monotonic() - started
        assert hook.attempts == 3
    assert elapsed < SLOW_S  # three timed-out attempts, not one five-second wait
    errors = [line["error"] for line in log_lines(logs, "notify.retry")]
    assert errors == [f"no answer within {TIMEOUT_S:g}s"] * 2


def test_a_receiver_that_is_down_is_retried_as_configured(
    dispatcher: Dispatcher, logs: io.StringIO
) -> None:
    before = counted("slack", "retried"), counted("slack", "failed")
    dispatcher.submit(slack_sink(dead_url(), RETRY), event())
    wait_until(lambda: bool(log_lines(logs, "notify.failed")))
    # Nothing listens, so the attempts are counted on our side: 2 retries, then given up.
    assert [line["attempt"] for line in log_lines(logs, "notify.retry")] == [1, 2]
    assert [line["attempt"] for line in log_lines(logs, "notify.failed")] == [3]
    assert (counted("slack", "retried"), counted("slack", "failed")) == (
        before[0] + 2,
        before[1] + 1,
    )


def test_a_4xx_is_not_retried_and_a_2xx_is_counted_delivered(
    dispatcher: Dispatcher, logs: io.StringIO
) -> None:
    delivered = counted("slack", "delivered")
    with receiver(status=404) as gone, receiver() as healthy:
        dispatcher.submit(slack_sink(gone.url, RETRY), event())
        dispatcher.submit(slack_sink(healthy.url, RETRY), event())
        wait_until(lambda: bool(log_lines(logs, "notify.failed")))
        healthy.wait_for(1)
        time.sleep(0.3)
        assert (gone.attempts, healthy.attempts) == (1, 1)
    wait_until(lambda: counted("slack", "delivered") == delivered + 1)


def test_a_dead_receiver_does_not_hold_up_deliveries_to_the_others(
    dispatcher: Dispatcher,
) -> None:
    slow_retry = RetryPolicy(attempts=5, backoff=2.0, max_backoff=2.0)
    with receiver(status=500) as failing, receiver() as healthy:
        dispatcher.submit(webhook_sink(failing.url, slow_retry), event())
        failing.wait_for(1)
        started = time.monotonic()
        dispatcher.submit(webhook_sink(healthy.url, slow_retry), event())
        healthy.wait_for(1)
        assert time.monotonic() - started < 1.0  # not queued behind the 2 s backoff


def test_a_full_queue_drops_counts_and_logs_instead_of_blocking(logs: io.StringIO) -> None:
    dispatcher = Dispatcher(capacity=2)  # not started: nothing drains it
    sink = slack_sink(dead_url())
    dropped = counted("slack", "dropped")
    started = time.monotonic()
    accepted = [dispatcher.submit(sink, event()) for _ in range(5)]
    assert time.monotonic() - started < 0.5
    assert accepted == [True, True, False, False, False]
    assert counted("slack", "dropped") == dropped + 3
    assert len(log_lines(logs, "notify.dropped")) == 3


def test_backoff_doubles_up_to_its_cap_and_jitter_keeps_half() -> None:
    retry = RetryPolicy(attempts=6, backoff=1.0, max_backoff=5.0)
    assert [retry.delay(n, jitter=0.999999) for n in (1, 2, 3, 4)] == pytest.approx(
        [1.0, 2.0, 4.0, 5.0]
    )
    assert [retry.delay(n, jitter=0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.5]


def test_closing_delivers_what_is_queued_then_stops(logs: io.StringIO) -> None:
    dispatcher = Dispatcher().start()
    with receiver() as hook:
        for _ in range(3):
            dispatcher.submit(webhook_sink(hook.url), event())
        dispatcher.close(timeout=5.0)
        assert hook.attempts == 3
    assert not dispatcher.submit(webhook_sink(dead_url()), event())  # closed: dropped


# ---- the decision path -----------------------------------------------------------------


@contextmanager
def sinks_for(kind: str) -> Iterator[list[HttpSink]]:
    """A Slack and a webhook sink on a receiver of `kind` (default retries, 5 s timeout)."""
    if kind == "down":
        yield [slack_sink(dead_url(), timeout=SLOW_S), webhook_sink(dead_url(), timeout=SLOW_S)]
        return
    status, delay = {"healthy": (200, 0.0), "slow": (200, SLOW_S), "failing": (500, 0.0)}[kind]
    with receiver(status=status, delay=delay) as hook:
        yield [slack_sink(hook.url, timeout=SLOW_S), webhook_sink(hook.url, timeout=SLOW_S)]


def decide_a_rollout(canary_error_rate: float, sinks: list[HttpSink]) -> tuple[Phase, float]:
    """Start a real driver and run its first analysis: a faulty canary rolls back, a healthy
    one is promoted. Returns the final phase and how long the decisions took."""
    dispatcher = Dispatcher().start()
    try:
        rollout = driver(canary_error_rate, notifier(dispatcher, *sinks))
        started = time.monotonic()
        rollout.handle(Start(rollout._clock()))
        rollout.handle(Tick(rollout._clock()))
        return rollout.state.phase, time.monotonic() - started
    finally:
        dispatcher.close(timeout=0)


@pytest.mark.parametrize("canary_error_rate", [0.5, 0.0], ids=["faulty", "healthy"])
def test_decisions_take_as_long_with_a_dead_slow_or_failing_receiver_as_with_a_healthy_one(
    canary_error_rate: float,
) -> None:
    timings: dict[str, float] = {}
    for kind in ("healthy", "down", "slow", "failing"):
        with sinks_for(kind) as sinks:
            phase, timings[kind] = decide_a_rollout(canary_error_rate, sinks)
        assert phase is (Phase.ROLLED_BACK if canary_error_rate else Phase.SUCCEEDED)
    print(f"decision time by receiver: {timings}")
    for kind in ("down", "slow", "failing"):
        assert abs(timings[kind] - timings["healthy"]) < 1.0, timings


def test_notify_returns_at_once_while_the_receiver_takes_5s() -> None:
    dispatcher = Dispatcher().start()
    try:
        with receiver(delay=SLOW_S) as hook:
            rollout_notifier = notifier(dispatcher, webhook_sink(hook.url, timeout=SLOW_S))
            calls = []
            for _ in range(50):
                started = time.monotonic()
                rollout_notifier.notify(event())
                calls.append(time.monotonic() - started)
            hook.wait_for(1)
    finally:
        dispatcher.close(timeout=0)
    print(f"notify(): slowest call {max(calls) * 1000:.2f} ms, all 50 {sum(calls) * 1000:.2f} ms")
    assert max(calls) < 0.1 and sum(calls) < 0.5
