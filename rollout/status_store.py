"""Where the controller keeps a rollout's state: the CanaryRollout's `status` (subresource).

The status is the only memory the controller has: a restarted controller, or the replica
that takes over leadership, resumes every rollout from it. Each save:
1. reads the object (its resourceVersion, spec.paused and request annotations);
2. refuses to write if the status is not the one this store wrote (or loaded) last: another
   replica has taken the rollout over, so this one must stop acting (`LostRollout`);
3. writes the new status with the resourceVersion read (409: read again and retry);
4. returns the commands people asked for since the last save - the request annotations not
   yet handled, and the edge of `spec.paused` - having recorded them as handled in that same
   write, so a request is applied exactly once whoever crashes when.
A save that would change nothing writes nothing.
"""

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import structlog
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout.driver import CheckRecord
from rollout.engine import Command, RolloutState
from rollout.errors import InfraError
from rollout.resources import (
    CANARY_ROLLOUTS,
    GROUP,
    VERSION,
    CanaryRollout,
    CanaryRolloutStatus,
    LastAnalysis,
    Run,
    parse_rollout,
    request_command,
    status_of,
)
from rollout.traffic.istio import ConflictError, api_error

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5
REQUEST_TIMEOUT = 10.0


class LostRollout(Exception):
    """Another replica wrote this rollout's status: stop driving it (not a rollout error,
    so the driver does not turn it into a Failed phase)."""


class RolloutApi:
    """CanaryRollout reads and status writes, API failures turned into our errors."""

    def __init__(self, api: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        return api_call(
            f"CanaryRollout {namespace}/{name}",
            self._custom.get_namespaced_custom_object,
            GROUP, VERSION, namespace, CANARY_ROLLOUTS, name,
        )  # fmt: skip

    def replace_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return api_call(
            f"CanaryRollout {meta['namespace']}/{meta['name']} status",
            self._custom.replace_namespaced_custom_object_status,
            GROUP, VERSION, meta["namespace"], CANARY_ROLLOUTS, meta["name"], obj,
        )  # fmt: skip


def api_call(what: str, method: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """One Kubernetes API call; its failures become our errors (exit 2 or 3, one line)."""
    try:
        result: dict[str, Any] = method(*args, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as exc:
        raise api_error(what, exc) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise InfraError(f"{what}: cannot reach the Kubernetes API: {exc}") from exc
    return result


class StatusStore:
    """One CanaryRollout's status as the driver's StateStore."""

    def __init__(
        self,
        api: RolloutApi,
        rollout: CanaryRollout,
        run: Run,
        is_leader: Callable[[], bool],
        checks: Callable[[], Sequence[CheckRecord]] = tuple,
    ) -> None:
        self._api = api
        self._namespace = rollout.metadata.namespace
        self._name = rollout.metadata.name
        self._run = run
        self._is_leader = is_leader
        self._checks = checks
        self._expected = rollout.status  # what the stored status must be for us to write
        self._log = log.bind(namespace=self._namespace, name=self._name)

    def follow(self, checks: Callable[[], Sequence[CheckRecord]]) -> None:
        """Where the driver keeps its analyses (for `lastAnalysis`)."""
        self._checks = checks

    def save(self, state: RolloutState, now: datetime) -> list[Command]:
        """Store `state`; return the commands requested since the last save (see module)."""
        for _ in range(MAX_ATTEMPTS):
            if not self._is_leader():
                raise LostRollout(f"{self._namespace}/{self._name}: no longer the leader")
            obj = self._api.get(self._namespace, self._name)
            rollout = parse_rollout(obj)
            if rollout.status != self._expected:
                raise LostRollout(f"{rollout.key}: its status was written by another replica")
            status, commands = self.compose(rollout, state, now)
            if status == rollout.status:
                return commands
            obj["status"] = status.model_dump(mode="json", by_alias=True)
            try:
                stored = self._api.replace_status(obj)
            except ConflictError:
                continue
            self._expected = parse_rollout(stored).status
            for command in commands:
                self._log.info("rollout.request_applied", command=command.name, step=state.step)
            return commands
        raise ConflictError(
            f"CanaryRollout {self._namespace}/{self._name}: could not save its status "
            "(409 each time)"
        )

    def compose(
        self, rollout: CanaryRollout, state: RolloutState, now: datetime
    ) -> tuple[CanaryRolloutStatus, list[Command]]:
        """The status to write for `state`, and the commands it records as handled."""
        previous = rollout.status or CanaryRolloutStatus()
        commands = [request_command(value, now) for _, value in rollout.requests()]
        # A handled id is forgotten once its annotation is gone (`rollout` commands remove the
        # handled ones when they add theirs), so the list stays short.
        present = {rid for rid, _ in rollout.all_requests()}
        handled = [rid for rid in previous.handled_requests if rid in present]
        handled += [rid for rid, _ in rollout.requests()]
        if rollout.spec.paused != previous.spec_paused:
            commands.append(Command(now, "pause" if rollout.spec.paused else "resume", by="spec"))
        status = status_of(
            state, run=self._run, generation=rollout.metadata.generation, previous=previous
        )
        update: dict[str, Any] = {
            "handled_requests": tuple(handled),
            "spec_paused": rollout.spec.paused,
        }
        analysis = self._last_analysis()
        if analysis is not None:
            update["last_analysis"] = analysis
        return status.model_copy(update=update), commands

    def _last_analysis(self) -> LastAnalysis | None:
        steps = [check for check in self._checks() if check.kind == "step"]
        if not steps:
            return None
        check = steps[-1]
        report = check.report
        return LastAnalysis(
            at=report.at,
            step=check.step,
            weight=check.weight,
            verdict=report.check.verdict,
            reason=report.check.reason,
            duration_seconds=check.seconds,
            metrics=report.check.metrics,
        )
