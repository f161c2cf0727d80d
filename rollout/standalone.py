"""`rollout run`: one canary driven to the end in this process, its state on the VirtualService.

Everything that can be wrong with the input is checked before anything is written: the
policy, the route and subsets, the version labels, and that Prometheus answers. Only then
is the lock taken, and the run either starts or resumes where the stored state says.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import structlog
from kubernetes import client

from rollout.driver import Driver, lease_renewal_interval, utcnow
from rollout.engine import Command, Phase, RolloutState, Start
from rollout.errors import InfraError, InputError
from rollout.gates import url_gates
from rollout.metrics.prometheus import PrometheusReader, QueryError
from rollout.notify.notifier import standalone as standalone_notifier
from rollout.policy import Notifications, RolloutPolicy
from rollout.scheduler import RolloutScheduler
from rollout.secrets import SecretReader
from rollout.store import AnnotationStore, Request, StoredRun
from rollout.subsets import resolve_subject
from rollout.target import Target
from rollout.traffic.istio import IstioRouter, KubeIstioStore

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How to run: where Prometheus is, version overrides, the emergency path."""

    prometheus_url: str
    skip_analysis: bool = False
    stable_version: str | None = None
    canary_version: str | None = None
    service: str | None = None
    notifications: Notifications | None = None  # per rollout (--notify), added to the policy's


def prepare(
    policy: RolloutPolicy, target: Target, api: client.ApiClient, options: RunOptions
) -> Driver:
    """Check the input, take the lock and build the driver; nothing is written before the
    lock (a bad route, a missing subset or a dead Prometheus changes nothing)."""
    objects = KubeIstioStore(api)
    router = IstioRouter(objects)
    router.current_weights(target)  # the route and both subsets exist and are unambiguous
    subject = resolve_subject(
        target,
        lambda: objects,
        stable_version=options.stable_version,
        canary_version=options.canary_version,
        service=options.service,
    )
    reader = PrometheusReader(options.prometheus_url)
    if not options.skip_analysis:
        _check_prometheus(reader)
    notifier = standalone_notifier(policy, options.notifications, target, api)
    gates = url_gates(policy, SecretReader(api, target.namespace))
    store = AnnotationStore(objects, target)
    state = store.acquire(utcnow())
    return Driver(
        policy=policy,
        target=target,
        subject=subject,
        router=router,
        reader=reader,
        store=store,
        state=state,
        notifier=notifier,
        gates=gates,
    )


def drive(
    driver: Driver,
    *,
    skip_analysis: bool = False,
    stop: threading.Event | None = None,
    on_change: Callable[[RolloutState], None] | None = None,
) -> RolloutState:
    """Run the driver's jobs until the rollout ends, pauses, or `stop` is set."""
    finished = stop or threading.Event()

    def watch(state: RolloutState) -> None:
        if on_change is not None:
            on_change(state)
        if state.terminal or state.phase is Phase.PAUSED:
            finished.set()

    driver.on_change(watch)
    now = utcnow()
    if driver.state.phase is Phase.PENDING:
        driver.handle(Start(now))
    elif driver.state.phase is Phase.PAUSED:
        driver.handle(Command(now, "resume", by="rollout run"))
    else:
        log.info("rollout.resumed", phase=str(driver.state.phase), step=driver.state.step)
    if skip_analysis and not driver.state.terminal:
        driver.handle(Command(utcnow(), "promote", by="rollout run --skip-analysis"))
    if driver.state.terminal:
        return driver.state
    scheduler = RolloutScheduler()
    scheduler.add(str(driver.target), driver, lease_renewal_interval(driver.policy))
    scheduler.start()
    try:
        finished.wait()
    finally:
        scheduler.shutdown()
    return driver.state


def stored_run(api: client.ApiClient, target: Target) -> StoredRun | None:
    """The run stored on the target's VirtualService (for `rollout status`)."""
    return AnnotationStore(KubeIstioStore(api), target).load()


def send_request(
    api: client.ApiClient, target: Target, name: Literal["abort", "approve"], by: str
) -> RolloutState | None:
    """Hand a person's command to the target's unfinished run (None when there is none).

    An approval names the step whose gate it clears, so it can never clear a later one.
    """
    store = AnnotationStore(KubeIstioStore(api), target)
    step = None
    if name == "approve":
        stored = store.load()
        if stored is None or stored.state.terminal or stored.state.awaiting is None:
            vs = f"{target.namespace}/{target.virtual_service}"
            raise InputError(f"no rollout on VirtualService {vs} is waiting for approval")
        step = stored.state.step
    return store.request(Request(name=name, by=by, at=datetime.now(UTC), step=step))


def _check_prometheus(reader: PrometheusReader) -> None:
    """Fail before touching traffic when Prometheus does not answer (exit 3)."""
    try:
        reader.scalar("vector(1)", utcnow())
    except QueryError as exc:
        raise InfraError(f"Prometheus at {reader.url} does not answer queries: {exc}") from exc
