"""`rollout controller`: drives every CanaryRollout it sees, one Driver per rollout.

- Watches CanaryRollouts (one namespace or all) and re-lists after a broken or ended watch,
  so a missed event costs at most one re-list.
- Acts only while it holds the Lease (`rollout.leader`); on losing it, it drops every driver
  at once, and the store's check of the status it last wrote fences off a late write.
- Keeps no state of its own: each rollout's state is its `status` (`rollout.status_store`),
  so a new leader, or a restarted controller, resumes every rollout where its status says.
- A run is identified by its subsets: a spec naming another canary starts a new run; a
  `retry` request starts a finished run again with the same spec.
- Serves `/healthz`, `/readyz` (the first list succeeded) and `/metrics`.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import structlog
import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from rollout.driver import Driver, lease_renewal_interval
from rollout.engine import ActionFailed, Phase, Plan, RolloutState, Start, decide
from rollout.errors import RolloutError
from rollout.gates import url_gates
from rollout.leader import LeaderElector, Timing
from rollout.metrics.prometheus import PrometheusReader
from rollout.notify import config as notify_config
from rollout.notify.delivery import Dispatcher
from rollout.notify.events import InvolvedObject, Where
from rollout.notify.notifier import FLUSH_TIMEOUT_S, RolloutNotifier
from rollout.policy import RolloutPolicy
from rollout.resources import (
    API_VERSION,
    CANARY_ROLLOUTS,
    GROUP,
    ROLLOUT_POLICIES,
    VERSION,
    CanaryRollout,
    Run,
    inline_policy,
    parse_rollout,
    policy_from_object,
)
from rollout.scheduler import RolloutScheduler
from rollout.secrets import SecretReader
from rollout.status_store import LostRollout, RolloutApi, StatusStore
from rollout.subsets import resolve_subject
from rollout.traffic.istio import IstioRouter, KubeIstioStore, api_error

log = structlog.get_logger(__name__)

# Names the controller's requests in the API server's audit log (and in the tests' record).
USER_AGENT = "cello-rollout-controller"
WATCH_TIMEOUT_S = 30
RETRY_S = 1.0
# Failing a rollout needs no plan (it never consults steps or limits); the engine wants one.
_NO_PLAN = Plan((100,), timedelta(seconds=1), 1, 1, "pause")

# Every API call the controller makes, as RBAC rules (group, resource, verbs). deploy/'s
# Role must grant exactly these; tests record the calls a real run makes and compare.
PERMISSIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (GROUP, CANARY_ROLLOUTS, ("get", "list", "watch")),
    (GROUP, f"{CANARY_ROLLOUTS}/status", ("update",)),
    (GROUP, ROLLOUT_POLICIES, ("get",)),
    ("networking.istio.io", "virtualservices", ("get", "patch")),
    ("networking.istio.io", "destinationrules", ("get", "list")),
    ("coordination.k8s.io", "leases", ("get", "create", "update")),
)


@dataclass(frozen=True)
class Config:
    """How the controller runs (the `rollout controller` flags)."""

    prometheus_url: str
    namespace: str | None = None  # None: all namespaces
    lease_namespace: str = "cello-rollout"
    lease_name: str = "cello-rollout-controller"
    lease_seconds: float = 15.0
    address: str = "0.0.0.0"
    port: int = 8080


class Metrics:
    """The controller's own metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("namespace", "name")
        self.phase = Gauge(
            "cello_rollout_phase", "1 for the rollout's current phase", (*labels, "phase"),
            registry=self.registry,
        )  # fmt: skip
        self.weight = Gauge(
            "cello_rollout_canary_weight", "Canary weight (%)", labels, registry=self.registry
        )
        self.failed = Gauge(
            "cello_rollout_failed_checks", "Failed checks in the run", labels,
            registry=self.registry,
        )  # fmt: skip
        self.promotions = Counter(
            "cello_rollout_promotions", "Rollouts promoted", registry=self.registry
        )
        self.rollbacks = Counter(
            "cello_rollout_rollbacks", "Rollouts rolled back", registry=self.registry
        )
        self.analysis = Histogram(
            "cello_rollout_analysis_duration_seconds", "Duration of step analyses",
            registry=self.registry,
        )  # fmt: skip
        self.leader = Gauge("cello_rollout_leader", "1 while leading", registry=self.registry)

    def show(self, namespace: str, name: str, state: RolloutState) -> None:
        for phase in Phase:
            value = 1 if phase is state.phase else 0
            self.phase.labels(namespace, name, str(phase)).set(value)
        self.weight.labels(namespace, name).set(state.weight)
        self.failed.labels(namespace, name).set(state.failed_checks)


@dataclass
class Active:
    """A rollout this replica drives now."""

    run: Run
    driver: Driver
    checks_seen: int = 0


class Controller:
    """The watch loop, the drivers it runs, leadership, and the HTTP endpoints."""

    def __init__(self, api: client.ApiClient, config: Config) -> None:
        api.user_agent = USER_AGENT
        self._api = api
        self.config = config
        self._custom = client.CustomObjectsApi(api)
        self._rollouts = RolloutApi(api)
        self._objects = KubeIstioStore(api)
        self._reader = PrometheusReader(config.prometheus_url)
        self._scheduler = RolloutScheduler()
        self._dispatcher = Dispatcher()
        self._active: dict[str, Active] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._synced = threading.Event()
        self.metrics = Metrics()
        self._elector = LeaderElector(
            api,
            config.lease_namespace,
            config.lease_name,
            self._leadership,
            Timing(config.lease_seconds),
        )
        self._watcher = threading.Thread(target=self._watch_loop, name="watch", daemon=True)

    # ---- lifecycle -------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set, then shut down cleanly (release the Lease)."""
        server = _http_server(self)
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        self._scheduler.start()
        self._dispatcher.start()
        self._watcher.start()
        self._elector.start()
        log.info("controller.started", identity=self._elector.identity, port=server.port)
        stop.wait()
        log.info("controller.stopping")
        self._stop.set()
        with self._lock:
            self._drop_all()
        self._elector.stop()
        self._scheduler.shutdown()
        self._dispatcher.close(FLUSH_TIMEOUT_S)
        server.shutdown()
        log.info("controller.stopped")

    def healthy(self) -> bool:
        """/healthz: the watch loop runs (it retries API failures itself; if it died, only
        a restart helps)."""
        return self._watcher.is_alive()

    def ready(self) -> bool:
        """/readyz: the first list succeeded (a standby replica is ready too: it is what
        takes over)."""
        return self._synced.is_set()

    # ---- leadership ------------------------------------------------------------------------

    def _leadership(self, leading: bool) -> None:
        """Lost: stop driving at once. Gained: pick up every rollout from its status."""
        self.metrics.leader.set(1 if leading else 0)
        with self._lock:
            if not leading:
                self._drop_all()
                return
        try:
            objects = self._list()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            # The watch loop's next list picks every rollout up instead.
            log.warning("controller.list_failed", error=str(exc).splitlines()[0])
            return
        for obj in objects:
            self._reconcile(obj)

    def _drop_all(self) -> None:
        for key in list(self._active):
            self._drop(key)

    def _drop(self, key: str) -> None:
        """Stop driving `key` (call under the lock); its status keeps where it was."""
        self._scheduler.remove(key)
        self._active.pop(key, None)

    # ---- watching --------------------------------------------------------------------------

    def _list_call(self) -> Callable[..., Any]:
        namespace = self.config.namespace
        if namespace is None:
            return lambda **kw: self._custom.list_cluster_custom_object(
                GROUP, VERSION, CANARY_ROLLOUTS, **kw
            )
        return lambda **kw: self._custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, CANARY_ROLLOUTS, **kw
        )

    def _list(self) -> list[dict[str, Any]]:
        listing = self._list_call()(_request_timeout=10)
        items: list[dict[str, Any]] = listing.get("items") or []
        return items

    def _watch_loop(self) -> None:
        """List, reconcile everything, watch from the list's resourceVersion; on any break,
        start over with a fresh list."""
        while not self._stop.is_set():
            try:
                self._list_and_watch()
            except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
                log.warning("controller.watch_broken", error=str(exc).splitlines()[0])
                self._stop.wait(RETRY_S)

    def _list_and_watch(self) -> None:
        listing = self._list_call()(_request_timeout=10)
        self._synced.set()
        seen = set()
        for obj in listing.get("items") or []:
            seen.add(_key(obj))
            self._reconcile(obj)
        with self._lock:
            for key in set(self._active) - seen:
                self._drop(key)
        stream = watch.Watch().stream(
            self._list_call(),
            resource_version=listing["metadata"]["resourceVersion"],
            timeout_seconds=WATCH_TIMEOUT_S,
            _request_timeout=WATCH_TIMEOUT_S + 10,
        )
        for event in stream:
            if self._stop.is_set():
                return
            obj = event["object"]
            if event["type"] == "ERROR":
                log.info("controller.watch_expired", status=obj.get("code"))
                return
            if event["type"] == "DELETED":
                with self._lock:
                    self._drop(_key(obj))
                continue
            self._reconcile(obj)

    # ---- reconciling -----------------------------------------------------------------------

    def _reconcile(self, obj: dict[str, Any]) -> None:
        """Bring one rollout under a driver if it needs one (only while leading)."""
        with self._lock:
            if not self._elector.leading or self._stop.is_set():
                return
            key = _key(obj)
            try:
                rollout = parse_rollout(obj)
            except RolloutError as exc:
                log.error("rollout.invalid", rollout=key, error=str(exc))
                return
            run = Run(stable=rollout.spec.target.stable, canary=rollout.spec.target.canary)
            active = self._active.get(key)
            if active is not None and active.run == run:
                return
            if active is not None:
                log.info("rollout.new_run", rollout=key, canary=run.canary)
                self._drop(key)
            try:
                self._start(rollout, run)
            except LostRollout as exc:
                log.warning("rollout.lost", rollout=key, reason=str(exc))
                self._drop(key)
            except RolloutError as exc:
                log.error("rollout.error", rollout=key, error=str(exc))

    def _start(self, seen: CanaryRollout, run: Run) -> None:
        """Resume or start `seen`'s run from a fresh read of its status."""
        rollout = parse_rollout(self._rollouts.get(seen.metadata.namespace, seen.metadata.name))
        status = rollout.status
        store = StatusStore(self._rollouts, rollout, run, lambda: self._elector.leading)
        if status is not None and status.run == run and status.terminal:
            # Settle requests made on the finished run; only a retry starts it again.
            commands = store.save(status.state(), _now())
            if not any(command.name == "retry" for command in commands):
                return
            state = RolloutState()
        elif status is not None and status.run == run:
            state = status.state()
        else:
            state = RolloutState()
        self._drive(rollout, run, store, state)

    def _drive(
        self, rollout: CanaryRollout, run: Run, store: StatusStore, state: RolloutState
    ) -> None:
        namespace, name = rollout.metadata.namespace, rollout.metadata.name
        bound = log.bind(namespace=namespace, name=name)
        target = rollout.spec.target.target(namespace)
        try:
            policy = self._policy(rollout)
            IstioRouter(self._objects).current_weights(target)
            subject = resolve_subject(target, lambda: self._objects)
            secrets = SecretReader(self._api, namespace)
            gates = url_gates(policy, secrets)
            notifier = self._notifier(rollout, policy, secrets)
        except RolloutError as exc:
            bound.error("rollout.cannot_start", error=str(exc), step=state.step)
            store.save(_failed(state, str(exc)), _now())
            return
        driver = Driver(
            policy=policy,
            target=target,
            subject=subject,
            router=IstioRouter(self._objects),
            reader=self._reader,
            store=store,
            state=state,
            notifier=notifier,
            gates=gates,
        )
        store.follow(lambda: driver.record.checks)
        active = Active(run, driver)
        self._active[rollout.key] = active
        driver.on_change(lambda new: self._changed(rollout.key, active, new))
        if state.phase is Phase.PENDING:
            driver.handle(Start(_now()))
        else:
            bound.info("rollout.resumed", phase=str(state.phase), step=state.step)
        self.metrics.show(namespace, name, driver.state)
        if driver.state.terminal:
            self._drop(rollout.key)
            return
        self._scheduler.add(rollout.key, driver, lease_renewal_interval(policy))

    def _policy(self, rollout: CanaryRollout) -> RolloutPolicy:
        spec = rollout.spec
        if spec.policy is not None:
            return inline_policy(rollout.metadata.name, spec.policy)
        assert spec.policy_ref is not None  # the model requires one of the two
        what = f"RolloutPolicy {rollout.metadata.namespace}/{spec.policy_ref.name}"
        try:
            obj = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, rollout.metadata.namespace, ROLLOUT_POLICIES,
                spec.policy_ref.name, _request_timeout=10,
            )  # fmt: skip
        except ApiException as exc:
            raise api_error(what, exc) from exc
        return policy_from_object(cast(dict[str, Any], obj))

    def _notifier(
        self, rollout: CanaryRollout, policy: RolloutPolicy, secrets: SecretReader
    ) -> RolloutNotifier | None:
        """The rollout's notifier (None when its policy configures no sink); events are about
        the CanaryRollout, and one dispatcher serves every rollout."""
        routes = notify_config.routes(
            notify_config.merged(policy.spec.notifications), secrets, self._api
        )
        if not routes:
            return None
        target = rollout.spec.target
        where = Where(
            rollout=InvolvedObject(
                API_VERSION, "CanaryRollout", rollout.metadata.namespace, rollout.metadata.name
            ),
            virtual_service=target.virtual_service,
            stable=target.stable,
            canary=target.canary,
            steps=len(policy.spec.weights),
        )
        return RolloutNotifier(where, routes, self._dispatcher)

    def _changed(self, key: str, active: Active, state: RolloutState) -> None:
        """After every decision: metrics, and letting go of a rollout that ended."""
        namespace, _, name = key.partition("/")
        self.metrics.show(namespace, name, state)
        checks = [c for c in active.driver.record.checks if c.kind == "step"]
        for check in checks[active.checks_seen :]:
            self.metrics.analysis.observe(check.seconds)
        active.checks_seen = len(checks)
        if not state.terminal:
            return
        if state.phase is Phase.SUCCEEDED:
            self.metrics.promotions.inc()
        elif state.phase is Phase.ROLLED_BACK:
            self.metrics.rollbacks.inc()
        with self._lock:
            if self._active.get(key) is active:
                self._drop(key)


def _failed(state: RolloutState, reason: str) -> RolloutState:
    """The state a rollout that cannot start is stored in (traffic stays on stable)."""
    return decide(state, ActionFailed(_now(), reason), _NO_PLAN).state


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _now() -> datetime:
    return datetime.now(UTC)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    controller: Controller

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        controller = self.server.controller
        if self.path == "/metrics":
            self._send(200, generate_latest(controller.metrics.registry), "text/plain")
        elif self.path == "/healthz":
            self._probe(controller.healthy())
        elif self.path == "/readyz":
            self._probe(controller.ready())
        else:
            self._send(404, b"not found\n")

    def _probe(self, ok: bool) -> None:
        self._send(200 if ok else 503, b"ok\n" if ok else b"not ready\n")

    def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Probes every few seconds would drown the log."""


def _http_server(controller: Controller) -> _Server:
    server = _Server((controller.config.address, controller.config.port), _Handler)
    server.controller = controller
    return server
