"""What the `rollout` commands do to a CanaryRollout: create or update it, hand the
controller a request, set `spec.paused`, and wait for a verdict. The controller does the rest.

Writes carry the resourceVersion read (409: read again and retry), so a command never
undoes a concurrent change. A request is a new annotation with an id of its own (time-ordered
and random), so none is ever overwritten; the same write removes the annotations of requests
the status says were handled, which keeps the object small.
"""

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from rollout.driver import exit_code
from rollout.engine import Phase
from rollout.errors import ExitCode, InfraError, InputError
from rollout.policy import RolloutPolicy
from rollout.resources import (
    API_VERSION,
    CANARY_ROLLOUTS,
    GROUP,
    REQUEST_PREFIX,
    VERSION,
    CanaryRollout,
    TargetSpec,
    parse_rollout,
)
from rollout.status_store import RolloutApi, api_call
from rollout.traffic.istio import ConflictError

MAX_ATTEMPTS = 5
POLL_S = 0.5


class RolloutClient:
    """CanaryRollout operations for the CLI, in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._rollouts = RolloutApi(api)
        self._namespace = namespace

    def get(self, name: str) -> CanaryRollout:
        return parse_rollout(self._rollouts.get(self._namespace, name))

    def apply(self, name: str, target: TargetSpec, policy: RolloutPolicy) -> str | None:
        """Create the CanaryRollout, or update its spec; a finished run of the same subsets
        is started again (a retry request, whose id is returned)."""
        spec = {
            "target": target.model_dump(by_alias=True, exclude_none=True),
            "policy": policy.spec.model_dump(by_alias=True, mode="json", exclude_none=True),
        }
        body = {"apiVersion": API_VERSION, "kind": "CanaryRollout",
                "metadata": {"name": name, "namespace": self._namespace}, "spec": spec}  # fmt: skip
        try:
            api_call(self._what(name), self._custom.create_namespaced_custom_object,
                     GROUP, VERSION, self._namespace, CANARY_ROLLOUTS, body)  # fmt: skip
            return None
        except ConflictError:
            pass  # it exists: update it
        current = self.get(name)
        status = current.status
        same_run = status is not None and status.run is not None and (
            (status.run.stable, status.run.canary) == (target.stable, target.canary)
        )  # fmt: skip
        self._patch(name, {"spec": spec})
        if same_run and status is not None and status.terminal:
            return self.request(name, "retry")
        return None

    def request(self, name: str, command: str) -> str:
        """Add a request for the controller; returns its id."""
        rid = f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:6]}"
        self._update(name, lambda _: {}, {rid: command})
        return rid

    def set_paused(self, name: str, paused: bool) -> None:
        self._update(name, lambda _: {"spec": {"paused": paused}}, {})

    def _update(
        self, name: str, change: Callable[[CanaryRollout], dict[str, Any]], add: dict[str, str]
    ) -> None:
        for _ in range(MAX_ATTEMPTS):
            rollout = self.get(name)
            handled = set(rollout.status.handled_requests) if rollout.status else set()
            annotations: dict[str, str | None] = {
                REQUEST_PREFIX + rid: None for rid, _ in rollout.all_requests() if rid in handled
            }
            annotations.update({REQUEST_PREFIX + rid: cmd for rid, cmd in add.items()})
            patch = change(rollout) | {"metadata": {
                "resourceVersion": rollout.metadata.resource_version,
                "annotations": annotations,
            }}  # fmt: skip
            try:
                self._patch(name, patch)
            except ConflictError:
                continue
            return
        raise ConflictError(f"CanaryRollout {self._namespace}/{name}: changed on every try (409)")

    def _patch(self, name: str, patch: dict[str, Any]) -> None:
        api_call(self._what(name), self._custom.patch_namespaced_custom_object,
                 GROUP, VERSION, self._namespace, CANARY_ROLLOUTS, name, patch)  # fmt: skip

    def _what(self, name: str) -> str:
        return f"CanaryRollout {self._namespace}/{name}"

    def wait(self, name: str, request: str | None, timeout_s: float) -> CanaryRollout:
        """Poll until the current run ends (or pauses) after the spec we wrote was seen."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rollout = self.get(name)
            if _settled(rollout, request):
                return rollout
            time.sleep(POLL_S)
        raise InfraError(f"CanaryRollout {self._namespace}/{name}: no verdict in {timeout_s:.0f}s")


def _settled(rollout: CanaryRollout, request: str | None) -> bool:
    status = rollout.status
    if status is None or status.observed_generation < rollout.metadata.generation:
        return False
    target = rollout.spec.target
    if status.run is None or (status.run.stable, status.run.canary) != (
        target.stable,
        target.canary,
    ):
        return False
    if request is not None and request not in status.handled_requests:
        return False
    return status.terminal or status.phase is Phase.PAUSED


def verdict(rollout: CanaryRollout) -> ExitCode:
    """The exit code of a settled rollout (DESIGN: 0 promoted, 1 rolled back, 3 failed, 4
    aborted or paused)."""
    if rollout.status is None:
        raise InputError(f"CanaryRollout {rollout.key} has no status yet")
    return exit_code(rollout.status.state())


def describe(rollout: CanaryRollout, output: str) -> str:
    """`rollout status NAME`: the status as JSON, or a summary and the transitions."""
    status = rollout.status
    if output == "json":
        return rollout.model_dump_json(by_alias=True, indent=2)
    if status is None:
        return f"{rollout.key}: not picked up by a controller yet"
    lines = [
        f"{rollout.key}: {status.phase}, step {status.step + 1}, canary {status.weight}%, "
        f"failed checks {status.failed_checks}, inconclusive {status.inconclusive_streak}",
        f"  reason: {status.reason}",
    ]
    lines += [
        f"  {t.at:%H:%M:%S} {t.phase:<11} step {t.step + 1} {t.weight:>3}%  {t.reason}"
        for t in status.history
    ]
    return "\n".join(lines)
