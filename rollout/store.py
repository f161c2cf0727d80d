"""Where a standalone run (`rollout run`) keeps its state: an annotation on the VirtualService.

The annotation holds the engine's state and who is driving it. It is also the lock that keeps
a second `rollout run` off the same VirtualService:
- the holder renews `renewed` on every save (the guard job saves every few seconds);
- another process may take the run over only when the holder is gone: its lease expired, or
  it ran on this host and its process no longer exists (a run killed with SIGKILL and
  started again resumes at once instead of waiting out the lease);
- every write carries the resourceVersion it read, so two processes can never both believe
  they hold the lock: the loser gets 409, re-reads, and sees the other holder.

People act on a run from other processes (`rollout abort`, `rollout approve`) by appending
a *request* to the record. The holder's next save takes the requests out in the same write
that stores its state (optimistic concurrency makes that atomic), and applies them: a
request is never lost and never applied twice. When no live process holds the run, `abort`
applies itself to the stored state directly.

A stored run that ended (Succeeded, RolledBack, Failed) is kept for `rollout status`, and a
new `rollout run` starts afresh on top of it: a failed release can be retried as it is.
"""

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from rollout.engine import Command, Converged, Plan, RolloutState, decide
from rollout.errors import ExitCode, InputError, RolloutError
from rollout.pids import alive
from rollout.target import Target
from rollout.traffic.istio import VIRTUAL_SERVICE, ConflictError, IstioStore, Obj

ANNOTATION = "rollout.cello.dev/state"
# An abort needs no plan (it never consults steps or limits); the engine's API wants one.
_NO_PLAN = Plan((100,), timedelta(seconds=1), 1, 1, "pause")
DEFAULT_LEASE = timedelta(seconds=15)
MAX_ATTEMPTS = 5


class LockHeld(RolloutError):
    """Another live process drives a rollout on this VirtualService; nothing was changed."""

    exit_code = ExitCode.INCOMPLETE


@dataclass(frozen=True)
class Holder:
    """Who drives a run: a host and a process id on it."""

    host: str
    pid: int

    @classmethod
    def me(cls) -> "Holder":
        """This process."""
        return cls(socket.gethostname(), os.getpid())

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"

    @classmethod
    def parse(cls, text: str) -> "Holder":
        """The inverse of str(); a malformed holder parses as pid 0 (never alive)."""
        host, _, pid = text.rpartition(":")
        return cls(host, int(pid) if pid.isdigit() else 0)

    def gone(self) -> bool:
        """True when this holder is a process on this host that no longer runs (a zombie
        counts as gone: a run killed with SIGKILL may not be reaped yet)."""
        if self.host != socket.gethostname():
            return False
        return self.pid <= 0 or not alive(self.pid)


class Request(BaseModel):
    """A person's command for the run, waiting for the holder to apply it."""

    model_config = ConfigDict(frozen=True)

    name: Literal["abort", "approve"]
    by: str
    at: datetime
    step: int | None = None

    def command(self) -> Command:
        """The engine event this request becomes."""
        return Command(self.at, self.name, by=self.by, step=self.step)


class StoredRun(BaseModel):
    """The annotation's content: the run's subsets, its holder, the engine state, and the
    requests people made that the holder has not applied yet."""

    model_config = ConfigDict(frozen=True)

    stable: str
    canary: str
    holder: str
    renewed: datetime
    state: RolloutState
    requests: tuple[Request, ...] = ()

    def free(self, now: datetime, lease: timedelta) -> bool:
        """Whether another process may take this run over."""
        if self.state.terminal:
            return True
        return now >= self.renewed + lease or Holder.parse(self.holder).gone()


class AnnotationStore:
    """Loads and saves one target's run in its VirtualService's annotation, as its holder."""

    def __init__(
        self,
        objects: IstioStore,
        target: Target,
        holder: Holder | None = None,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        self._objects = objects
        self._target = target
        self._holder = str(holder or Holder.me())
        self._lease = lease

    def load(self) -> StoredRun | None:
        """The stored run, or None when the VirtualService carries none."""
        return _stored(self._read(), self._target)

    def acquire(self, now: datetime) -> RolloutState:
        """Take the lock and return the state to continue from.

        An unfinished run of the same subsets resumes where it stopped; a finished one (or
        none) starts a new run from Pending. Raises LockHeld when a live process holds it.
        """
        for _ in range(MAX_ATTEMPTS):
            vs = self._read()
            stored = _stored(vs, self._target)
            held = stored is not None and not stored.free(now, self._lease)
            if stored is not None and held and stored.holder != self._holder:
                raise LockHeld(self._held_message(stored, now))
            state = _resumable(stored, self._target)
            # A resumed run keeps the requests made while nobody held it (its first save
            # applies them); a fresh run drops those of the finished one.
            kept = stored.requests if stored is not None and state is stored.state else ()
            try:
                self._write(vs, state, now, kept)
            except ConflictError:
                continue
            return state
        raise ConflictError(f"{self._vs_name()}: could not take the rollout lock (409 each time)")

    def save(self, state: RolloutState, now: datetime) -> list[Command]:
        """Store `state`, renew the lock, and take out the requests waiting for the holder.

        The returned commands are the caller's to apply (they are gone from the store once
        this returns). Raises LockHeld if another process took the run over.
        """
        for _ in range(MAX_ATTEMPTS):
            vs = self._read()
            stored = _stored(vs, self._target)
            if stored is not None and stored.holder != self._holder:
                raise LockHeld(f"{self._vs_name()}: the rollout was taken over by {stored.holder}")
            try:
                self._write(vs, state, now)
            except ConflictError:
                continue
            return [request.command() for request in (stored.requests if stored else ())]
        raise ConflictError(f"{self._vs_name()}: could not save the rollout state (409 each time)")

    def request(self, request: Request) -> RolloutState | None:
        """Hand `request` to the run; returns the stored state, None when no run is unfinished.

        An abort with no live holder is applied to the stored state at once (nobody else
        would); everything else waits for the holder, which may also be a later `rollout
        run` that resumes the stored state.
        """
        for _ in range(MAX_ATTEMPTS):
            vs = self._read()
            stored = _stored(vs, self._target)
            if stored is None or stored.state.terminal:
                return None
            if request.name == "abort" and stored.free(request.at, self._lease):
                state = decide(stored.state, request.command(), _NO_PLAN).state
                state = decide(state, Converged(request.at), _NO_PLAN).state
                record = stored.model_copy(update={"state": state, "requests": ()})
            else:
                record = stored.model_copy(update={"requests": (*stored.requests, request)})
            try:
                self._patch(vs, record)
            except ConflictError:
                continue
            return record.state
        raise ConflictError(
            f"{self._vs_name()}: could not record the {request.name} (409 each time)"
        )

    def _read(self) -> Obj:
        return self._objects.get(
            VIRTUAL_SERVICE, self._target.namespace, self._target.virtual_service
        )

    def _write(
        self, vs: Obj, state: RolloutState, now: datetime, requests: tuple[Request, ...] = ()
    ) -> None:
        record = StoredRun(
            stable=self._target.stable,
            canary=self._target.canary,
            holder=self._holder,
            renewed=now,
            state=state,
            requests=requests,
        )
        self._patch(vs, record)

    def _patch(self, vs: Obj, record: StoredRun) -> None:
        self._objects.patch(
            VIRTUAL_SERVICE,
            self._target.namespace,
            self._target.virtual_service,
            annotation_patch(vs, record.model_dump_json()),
        )

    def _held_message(self, stored: StoredRun, now: datetime) -> str:
        expires = max(0, int((stored.renewed + self._lease - now).total_seconds()))
        return (
            f"{self._vs_name()}: a rollout ({stored.stable} -> {stored.canary}, "
            f"{stored.state.phase} at {stored.state.weight}%) is being driven by "
            f"{stored.holder}; its lock expires {expires}s after its last renewal"
        )

    def _vs_name(self) -> str:
        return f"VirtualService {self._target.namespace}/{self._target.virtual_service}"


def annotation_patch(vs: Obj, value: str) -> list[Obj]:
    """A JSON patch setting our annotation, valid only on the resourceVersion read."""
    rv = str(vs["metadata"]["resourceVersion"])
    patch: list[Obj] = [{"op": "replace", "path": "/metadata/resourceVersion", "value": rv}]
    if vs["metadata"].get("annotations") is None:
        patch.append({"op": "add", "path": "/metadata/annotations", "value": {ANNOTATION: value}})
    else:
        key = ANNOTATION.replace("~", "~0").replace("/", "~1")
        patch.append({"op": "add", "path": f"/metadata/annotations/{key}", "value": value})
    return patch


def _stored(vs: Obj, target: Target) -> StoredRun | None:
    text = (vs.get("metadata", {}).get("annotations") or {}).get(ANNOTATION)
    if text is None:
        return None
    try:
        return StoredRun.model_validate_json(text)
    except ValidationError as exc:
        raise InputError(
            f"VirtualService {target.namespace}/{target.virtual_service}: annotation "
            f"{ANNOTATION} is not a rollout state ({exc.error_count()} errors); "
            "remove it to start over"
        ) from exc


def _resumable(stored: StoredRun | None, target: Target) -> RolloutState:
    """The state to continue from: the stored one if unfinished, else a fresh run."""
    if stored is None or stored.state.terminal:
        return RolloutState()
    if (stored.stable, stored.canary) != (target.stable, target.canary):
        raise InputError(
            f"VirtualService {target.namespace}/{target.virtual_service}: an unfinished "
            f"rollout {stored.stable} -> {stored.canary} is stored; abort it before "
            f"starting {target.stable} -> {target.canary}"
        )
    return stored.state
