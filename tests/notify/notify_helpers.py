"""Real engine, driver and analysis pieces around fakes for the cluster and Prometheus, and
notifiers pointed at local receivers."""

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import count

from pydantic import SecretStr

from rollout.driver import Driver
from rollout.engine import Command, RolloutState
from rollout.metrics.base import Measurement, MetricQueries, Role
from rollout.notify import slack, webhook
from rollout.notify.config import Route
from rollout.notify.delivery import Dispatcher, RetryPolicy, Sink
from rollout.notify.events import KINDS, InvolvedObject, Where
from rollout.notify.http import HttpSink
from rollout.notify.notifier import RolloutNotifier
from rollout.policy import RolloutPolicy
from rollout.subsets import Subject
from rollout.target import Target

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TARGET = Target(namespace="demo", virtual_service="cello-app", stable="v1", canary="v2")
SUBJECT = Subject(namespace="demo", service="cello-app", stable_version="v1", canary_version="v2")
WHERE = Where(
    rollout=InvolvedObject("networking.istio.io/v1", "VirtualService", "demo", "cello-app"),
    virtual_service="cello-app",
    stable="v1",
    canary="v2",
    steps=2,
)
SIGNING_KEY = "k3y-only-the-receiver-knows"
FAST = RetryPolicy(attempts=3, backoff=0.05, max_backoff=0.2)


def policy(**spec: object) -> RolloutPolicy:
    """A two-step policy (50 %, 100 %) judging the Istio error rate."""
    return RolloutPolicy.model_validate(
        {
            "apiVersion": "rollout.cello.dev/v1alpha1",
            "kind": "RolloutPolicy",
            "metadata": {"name": "notify-test"},
            "spec": {
                "steps": [50, 100],
                "interval": "1m",
                "minRequests": 10,
                "metrics": [
                    {"name": "error-rate", "provider": "istio", "kind": "errorRate", "max": 0.05}
                ],
            }
            | spec,
        }
    )


class FakeReader:
    """Prometheus answering a fixed error rate per subset, on 1000 requests."""

    def __init__(self, canary: float, stable: float = 0.0) -> None:
        self._values = {Role.CANARY: canary, Role.STABLE: stable}

    def measure(self, metric: str, role: Role, queries: MetricQueries, at: datetime) -> Measurement:
        return Measurement(metric, role, self._values[role], 1000.0, queries, at)


class FakeRouter:
    """A VirtualService that takes every weight."""

    def __init__(self) -> None:
        self.weights: list[int] = []

    def set_canary_weight(self, target: Target, weight: int) -> None:
        self.weights.append(weight)


class MemoryStore:
    """A state store that keeps nothing and hears no commands."""

    def save(self, state: RolloutState, now: datetime) -> Sequence[Command]:
        return ()


def clock(step: timedelta = timedelta(seconds=1)) -> Callable[[], datetime]:
    """A clock that moves `step` forward on every reading (steps fall due quickly)."""
    ticks = count()
    return lambda: T0 + next(ticks) * step


def driver(canary_error_rate: float, notifier: RolloutNotifier | None) -> Driver:
    """A real Driver over fakes; its analyses see `canary_error_rate` on the canary."""
    return Driver(
        policy=policy(interval="1s"),
        target=TARGET,
        subject=SUBJECT,
        router=FakeRouter(),  # type: ignore[arg-type]
        reader=FakeReader(canary_error_rate),  # type: ignore[arg-type]
        store=MemoryStore(),
        state=RolloutState(),
        clock=clock(),
        notifier=notifier,
    )


def slack_sink(url: str, retry: RetryPolicy = FAST, timeout: float = 1.0) -> HttpSink:
    return HttpSink("team-slack", "slack", SecretStr(url), slack.encode, timeout, retry)


def webhook_sink(url: str, retry: RetryPolicy = FAST, timeout: float = 1.0) -> HttpSink:
    encode = webhook.encoder(SecretStr(SIGNING_KEY))
    return HttpSink("deploy-hook", "webhook", SecretStr(url), encode, timeout, retry)


def notifier(dispatcher: Dispatcher, *sinks: Sink) -> RolloutNotifier:
    """A notifier sending every event to each of `sinks`."""
    return RolloutNotifier(WHERE, [Route(sink, frozenset(KINDS)) for sink in sinks], dispatcher)


def dispatchers() -> Iterator[Dispatcher]:
    """A started dispatcher, closed after the test."""
    dispatcher = Dispatcher().start()
    try:
        yield dispatcher
    finally:
        dispatcher.close(timeout=0)
