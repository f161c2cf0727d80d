"""Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it.

Only the holder of the Lease acts; the other replicas watch and wait. Timing (defaults for a
15 s lease):
- the leader renews every `retry` (lease/5) and steps down when it has not renewed for
  `renew_deadline` (2/3 of the lease), so it stops acting before anyone may take over;
- a follower takes the Lease over once its record has not changed for a lease less one
  retry, measured on the follower's own clock from when it last saw a change (clock skew
  between nodes does not matter), so with its polling it takes over within one lease of the
  leader's last renewal - after the leader stopped acting at its renew deadline;
- every write carries the resourceVersion read, so two candidates never both win: the loser
  gets 409 and stays a follower;
- on a clean shutdown the leader releases the Lease (empty holder), so its successor takes
  over at once instead of waiting out the lease.
"""

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = structlog.get_logger(__name__)

REQUEST_TIMEOUT = 5.0


def identity() -> str:
    """This replica's name in the Lease: the pod name (hostname) and a per-process nonce."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Timing:
    """Lease duration and the two intervals derived from it."""

    lease_s: float = 15.0

    @property
    def renew_deadline_s(self) -> float:
        return self.lease_s * 2 / 3

    @property
    def retry_s(self) -> float:
        return self.lease_s / 5


class LeaderElector:
    """Campaigns for the Lease in a thread; calls `on_change(True/False)` when leadership
    is gained or lost."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        on_change: Callable[[bool], None],
        timing: Timing = Timing(),
        me: str | None = None,
    ) -> None:
        self._leases = client.CoordinationV1Api(api)
        self._namespace = namespace
        self._name = name
        self._on_change = on_change
        self._timing = timing
        self.identity = me or identity()
        self._leading = False
        self._renewed = 0.0  # monotonic time of our last successful renewal
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._log = log.bind(lease=f"{namespace}/{name}", identity=self.identity)

    @property
    def leading(self) -> bool:
        """True while we hold the Lease and renewed it within the renew deadline."""
        return self._leading and time.monotonic() - self._renewed < self._timing.renew_deadline_s

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop campaigning; a leader releases the Lease so a successor need not wait."""
        self._stop.set()
        self._thread.join(timeout=self._timing.lease_s)
        if self._leading:
            self._set_leading(False)
            self._try(self._release)

    def _run(self) -> None:
        while not self._stop.is_set():
            acquired = self._try(self._acquire_or_renew)
            now = time.monotonic()
            if acquired:
                self._renewed = now
            if self._leading and now - self._renewed >= self._timing.renew_deadline_s:
                self._log.warning("leader.lost", reason="could not renew the lease in time")
            self._set_leading(bool(acquired) or self.leading)
            self._stop.wait(self._timing.retry_s)

    def _set_leading(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        self._log.info("leader.changed", leading=leading)
        self._on_change(leading)

    def _try(self, action: Callable[[], bool]) -> bool:
        """Run one Lease operation; API failures and conflicts count as 'not now'."""
        try:
            return action()
        except ApiException as exc:
            if exc.status != 409:
                self._log.warning("leader.api_error", status=exc.status, reason=exc.reason)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self._log.warning("leader.unreachable", error=str(exc))
        return False

    def _acquire_or_renew(self) -> bool:
        """One round: create the Lease, renew ours, or take over an expired one."""
        try:
            lease = self._leases.read_namespaced_lease(
                self._name, self._namespace, _request_timeout=REQUEST_TIMEOUT
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            self._leases.create_namespaced_lease(
                self._namespace, self._record(None), _request_timeout=REQUEST_TIMEOUT
            )
            return True
        spec: client.V1LeaseSpec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity or ""
        if holder != self.identity and not self._expired(holder, spec):
            return False
        ours = holder == self.identity
        transitions = (spec.lease_transitions or 0) + (0 if ours else 1)
        version = lease.metadata.resource_version if lease.metadata else None
        body = self._record(version, transitions, spec.acquire_time if ours else None)
        if not ours:
            self._log.info("leader.taking_over", previous=holder or None)
        self._leases.replace_namespaced_lease(
            self._name, self._namespace, body, _request_timeout=REQUEST_TIMEOUT
        )
        return True

    def _expired(self, holder: str, spec: client.V1LeaseSpec) -> bool:
        """An empty holder is free; otherwise free once its record has not changed for a
        whole lease on our clock."""
        if not holder:
            return True
        record = (holder, str(spec.renew_time))
        now = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
            return False
        duration = spec.lease_duration_seconds or self._timing.lease_s
        # One retry early, so that with the retry's delay the takeover lands within the lease:
        # still safe, as the holder stopped acting at its renew deadline (2/3 of the lease).
        return now - self._observed_at >= duration - self._timing.retry_s

    def _record(
        self,
        resource_version: str | None,
        transitions: int = 0,
        acquired: datetime | None = None,
    ) -> client.V1Lease:
        now = datetime.now(UTC)
        return client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=self._name, namespace=self._namespace, resource_version=resource_version
            ),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=max(1, round(self._timing.lease_s)),
                acquire_time=acquired or now,
                renew_time=now,
                lease_transitions=transitions,
            ),
        )

    def _release(self) -> bool:
        lease = self._leases.read_namespaced_lease(
            self._name, self._namespace, _request_timeout=REQUEST_TIMEOUT
        )
        spec = lease.spec
        if spec is None or spec.holder_identity != self.identity:
            return False
        spec.holder_identity = ""
        spec.lease_duration_seconds = 1
        self._leases.replace_namespaced_lease(
            self._name, self._namespace, lease, _request_timeout=REQUEST_TIMEOUT
        )
        self._log.info("leader.released")
        return True
