"""The driver's notifier: turns transitions and checks into events and queues them for the
sinks that want them. It never sends, waits or raises into the decision path."""

import atexit

import structlog
from kubernetes import client

from rollout.driver import CheckRecord
from rollout.engine import RolloutState, Transition
from rollout.judge import Verdict
from rollout.notify import config
from rollout.notify.delivery import Dispatcher
from rollout.notify.events import (
    Analysis,
    InvolvedObject,
    NotificationEvent,
    Where,
    analysis_of,
    from_check,
    from_transition,
)
from rollout.policy import Notifications, RolloutPolicy
from rollout.secrets import SecretReader
from rollout.target import Target

log = structlog.get_logger(__name__)
# How long a finished `rollout run` waits for its last notifications before exiting.
FLUSH_TIMEOUT_S = 15.0


class RolloutNotifier:
    """One rollout's notifications: where it is, which sinks get which events, and the
    analysis that decided last (attached to the transitions it caused)."""

    def __init__(self, where: Where, routes: list[config.Route], dispatcher: Dispatcher) -> None:
        self.where = where
        self._routes = routes
        self._dispatcher = dispatcher
        self._deciding: Analysis | None = None

    def notify(self, event: NotificationEvent) -> None:
        """Queue `event` for every sink that wants it; returns at once."""
        for route in self._routes:
            if event.kind in route.events:
                self._dispatcher.submit(route.sink, event)

    def transition(self, transition: Transition, state: RolloutState) -> None:
        """Announce an engine transition (state is the one after it)."""
        event = from_transition(transition, state, self.where, self._deciding)
        if event is not None:
            self.notify(event)

    def checked(self, check: CheckRecord, state: RolloutState) -> None:
        """Hear of an analysis: remember it if it decides, announce it if it did not pass.

        Step analyses always decide; a guard round acts (and so decides) only when it fails.
        """
        if check.kind == "guard" and check.report.check.verdict is not Verdict.FAIL:
            return
        self._deciding = analysis_of(check.kind, check.report)
        event = from_check(self._deciding, state, self.where)
        if event is not None:
            self.notify(event)


def virtual_service(target: Target) -> InvolvedObject:
    """The object a standalone run's events attach to: its VirtualService."""
    return InvolvedObject(
        "networking.istio.io/v1", "VirtualService", target.namespace, target.virtual_service
    )


def standalone(
    policy: RolloutPolicy,
    per_rollout: Notifications | None,
    target: Target,
    api: client.ApiClient,
) -> RolloutNotifier | None:
    """The notifier of a `rollout run` (None when nothing is configured): secrets are read
    now, so a missing one stops the run before it changes anything; its dispatcher gets
    FLUSH_TIMEOUT_S at exit to deliver the verdict."""
    sinks = config.merged(policy.spec.notifications, per_rollout)
    secrets = SecretReader(api, target.namespace)
    routes = config.routes(sinks, secrets, api)
    if not routes:
        return None
    dispatcher = Dispatcher().start()
    atexit.register(dispatcher.close, FLUSH_TIMEOUT_S)
    where = Where(
        rollout=virtual_service(target),
        virtual_service=target.virtual_service,
        stable=target.stable,
        canary=target.canary,
        steps=len(policy.spec.weights),
    )
    log.info("notify.configured", sinks=[route.sink.name for route in routes])
    return RolloutNotifier(where, routes, dispatcher)
