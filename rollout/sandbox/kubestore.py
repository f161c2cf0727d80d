"""The state behind the Kubernetes API stand-in: objects, resourceVersions, events, history.

It keeps the API server's rules that clients depend on:
- one global resourceVersion counter, like etcd's revision, bumped by every change;
  a write that changes nothing is not stored and gets no new resourceVersion, as in etcd;
- a write carrying a resourceVersion that is not the current one is a 409 Conflict;
- `metadata.generation` (custom resources) starts at 1 and grows when anything but
  metadata and status changes;
- with a `status` subresource, writes to the object keep its status and writes to
  `/status` change only the status;
- objects are checked against their CRD schema on every write (422 naming the field);
- a bounded event log lets a watch resume after a resourceVersion; older than the log
  is 410 Expired.
Every successful write is also kept per object (`history`) so tests can assert how often
and what a client wrote; it is not trimmed (a sandbox lives for minutes).
"""

import copy
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rollout.errors import InputError
from rollout.sandbox.kuberesources import ResourceType
from rollout.sandbox.patches import PatchError, json_patch, merge_patch
from rollout.target import check_dns1123_subdomain
from rollout.traffic.schema import schema_violations

Obj = dict[str, Any]
# (group, plural, namespace or "", name)
Key = tuple[str, str, str, str]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """A failure the server answers with a `Status` body and this HTTP code."""

    def __init__(
        self, code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.details = dict(details or {})

    def status(self) -> Obj:
        """The `Status` object the real API server sends for this failure."""
        return status_body(self.code, self.reason, str(self), self.details)


def status_body(code: int, reason: str, message: str, details: Mapping[str, Any]) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": dict(details),
        "code": code,
    }


def _details(rt: ResourceType, name: str) -> Obj:
    return {"name": name, "group": rt.group, "kind": rt.plural}


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.group_resource} "{name}" not found', _details(rt, name))


def conflict(rt: ResourceType, name: str) -> ApiError:
    message = (
        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, _details(rt, name))


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid with one cause per (field, message), as the API server reports them."""
    summary = ", ".join(f"{field}: {message}" for field, message in causes)
    details = {
        **_details(rt, name),
        "kind": rt.kind,
        "causes": [
            {"reason": "FieldValueInvalid", "message": message, "field": field}
            for field, message in causes
        ],
    }
    return ApiError(422, "Invalid", f'{rt.kind_qualified} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


class _Expired(Exception):
    """A watch's resourceVersion is older than the event log."""


@dataclass(frozen=True)
class Event:
    """One change, as a watch reports it; `obj` is a private copy."""

    resource_version: int
    rt: ResourceType
    namespace: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj


@dataclass(frozen=True)
class Write:
    """One successful write request to an object, kept for tests."""

    verb: str
    resource_version: str
    changed: bool
    obj: Obj | None

    def to_dict(self) -> Obj:
        return {
            "verb": self.verb,
            "resourceVersion": self.resource_version,
            "changed": self.changed,
            "object": self.obj,
        }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec(obj: Mapping[str, Any], rt: ResourceType) -> Obj:
    """What `generation` tracks: all but metadata (and status, when it is a subresource)."""
    skip = ("apiVersion", "kind", "metadata", *(("status",) if rt.status_subresource else ()))
    return {k: v for k, v in obj.items() if k not in skip}


def _meta(obj: Mapping[str, Any]) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise bad_request("Object 'metadata' is missing or not an object")
    return meta


class Store:
    """All objects of all resource types, guarded by one lock (writes are serialized like
    etcd's revisions). Watchers wait on the same condition."""

    def __init__(self, event_log_size: int = 1000) -> None:
        self._cond = threading.Condition()
        self._revision = 0
        self._objects: dict[Key, Obj] = {}
        self._events: deque[Event] = deque(maxlen=event_log_size)
        self._history: dict[Key, list[Write]] = {}
        self._types: dict[tuple[str, str], ResourceType] = {}  # of the objects stored
        self._closed = False

    # --- reads -------------------------------------------------------------------------

    def get(self, rt: ResourceType, version: str, namespace: str, name: str) -> Obj:
        with self._cond:
            return self._served(self._existing(rt, namespace, name), rt, version)

    def list_objects(
        self, rt: ResourceType, version: str, namespace: str | None, match: "Matcher"
    ) -> Obj:
        """A `<Kind>List` of the matching objects (all namespaces when `namespace` is None)."""
        with self._cond:
            items = [
                self._served(obj, rt, version)
                for key, obj in sorted(self._objects.items())
                if self._selected(key, obj, rt, namespace, match)
            ]
            revision = str(self._revision)
        return {
            "apiVersion": rt.api_version(version),
            "kind": f"{rt.kind}List",
            "metadata": {"resourceVersion": revision},
            "items": items,
        }

    def history(self, rt: ResourceType, namespace: str, name: str) -> list[Obj]:
        with self._cond:
            writes = self._history.get((rt.group, rt.plural, namespace, name), [])
            return [copy.deepcopy(w.to_dict()) for w in writes]

    # --- writes ------------------------------------------------------------------------

    def create(self, rt: ResourceType, version: str, namespace: str, body: Obj) -> Obj:
        obj = copy.deepcopy(body)
        meta = _meta(obj)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{secrets.token_hex(3)[:5]}"
        name = str(meta.get("name") or "")
        self._check_name(rt, name)
        with self._cond:
            if rt.namespaced:
                self._check_namespace(namespace)
            key = (rt.group, rt.plural, namespace, name)
            if key in self._objects:
                raise ApiError(
                    409, "AlreadyExists",
                    f'{rt.group_resource} "{name}" already exists', _details(rt, name),
                )  # fmt: skip
            for field in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp"):
                meta.pop(field, None)
            if rt.namespaced and meta.setdefault("namespace", namespace) != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now())
            if rt.custom:
                meta["generation"] = 1
            if rt.status_subresource:
                obj.pop("status", None)
            return self._commit(rt, version, key, "create", "ADDED", obj)

    def replace(
        self,
        rt: ResourceType,
        version: str,
        namespace: str,
        name: str,
        body: Obj,
        subresource: str | None = None,
    ) -> Obj:
        """PUT: the body replaces the object (or only its status, for `/status`)."""
        new = copy.deepcopy(body)
        if rt.custom and not _meta(new).get("resourceVersion"):
            raise invalid(
                rt, name, [("metadata.resourceVersion", "Invalid value: 0x0: must be specified")]
            )
        return self._update(rt, version, namespace, name, "update", lambda _: new, subresource)

    def patch(
        self,
        rt: ResourceType,
        version: str,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        subresource: str | None = None,
    ) -> Obj:
        """PATCH with a JSON merge patch or a JSON patch (strategic merge patch: built-in
        types only, applied as a merge patch since they have no merge keys we store)."""
        apply = self._patcher(rt, content_type, patch)
        return self._update(rt, version, namespace, name, "patch", apply, subresource)

    def delete(self, rt: ResourceType, version: str, namespace: str, name: str) -> Obj:
        with self._cond:
            key = (rt.group, rt.plural, namespace, name)
            obj = self._existing(rt, namespace, name)
            del self._objects[key]
            self._revision += 1
            obj = copy.deepcopy(obj)
            _meta(obj)["resourceVersion"] = str(self._revision)
            self._record(rt, key, "DELETED", obj, Write("delete", str(self._revision), True, None))
            if rt.plural == "namespaces" and not rt.group:
                self._delete_contents(name)
            return self._served(obj, rt, version)

    # --- watch -------------------------------------------------------------------------

    def watch(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        match: "Matcher",
        since: int | None,
        timeout_s: float,
    ) -> Iterator[Obj]:
        """Watch events (`{"type", "object"}`) after `since`, until `timeout_s` or close.

        Without `since` (or "0") the current objects come first as ADDED, as from the real
        server. A `since` older than the event log yields one ERROR event with a 410 Status.
        """
        deadline = time.monotonic() + timeout_s
        with self._cond:
            if since is None or since == 0:
                cursor = self._revision
                keys = sorted(
                    k
                    for k, o in self._objects.items()
                    if self._selected(k, o, rt, namespace, match)
                )
                initial = [self._served(self._objects[k], rt, version) for k in keys]
            elif self._expired(since):
                yield self._expired_event(since)
                return
            else:
                cursor, initial = since, []
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        while True:
            try:
                events = self._next_events(cursor, deadline)
            except _Expired:
                yield self._expired_event(cursor)
                return
            if events is None:
                return
            for event in events:
                cursor = event.resource_version
                if self._event_selected(event, rt, namespace, match):
                    yield {"type": event.type, "object": self._served(event.obj, rt, version)}

    def _next_events(self, cursor: int, deadline: float) -> list[Event] | None:
        """Events after `cursor` once there are some; None when the watch is over; _Expired
        when they have left the log."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._closed or self._revision > cursor,
                timeout=max(0.0, deadline - time.monotonic()),
            )
            if self._closed or self._revision <= cursor:
                return None
            if self._expired(cursor):
                raise _Expired
            return [e for e in self._events if e.resource_version > cursor]

    def close(self) -> None:
        """End every watch (the server is shutting down)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # --- internals ---------------------------------------------------------------------

    def _update(
        self,
        rt: ResourceType,
        version: str,
        namespace: str,
        name: str,
        verb: str,
        change: Callable[[Obj], Obj],
        subresource: str | None,
    ) -> Obj:
        if subresource is not None and (subresource != "status" or not rt.status_subresource):
            raise not_found(rt, name)
        with self._cond:
            key = (rt.group, rt.plural, namespace, name)
            old = self._existing(rt, namespace, name)
            new = change(self._served(old, rt, version))
            if not isinstance(new, dict):
                raise bad_request("the patched object is not a JSON object")
            new = self._merge_protected(rt, old, new, name, subresource)
            verb = verb if subresource is None else f"{verb}/{subresource}"
            if new == old:
                self._history.setdefault(key, []).append(
                    Write(verb, str(self._revision), False, copy.deepcopy(old))
                )
                return self._served(old, rt, version)
            if rt.custom and _spec(new, rt) != _spec(old, rt):
                _meta(new)["generation"] = int(_meta(old).get("generation", 1)) + 1
            return self._commit(rt, version, key, verb, "MODIFIED", new)

    def _merge_protected(
        self, rt: ResourceType, old: Obj, new: Obj, name: str, subresource: str | None
    ) -> Obj:
        """`new` with the fields a client may not change put back; 409 on a stale RV."""
        meta, old_meta = _meta(new), _meta(old)
        sent_version = meta.get("resourceVersion")
        if sent_version and sent_version != old_meta["resourceVersion"]:
            raise conflict(rt, name)
        if meta.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on "
                f"the URL ({name})"
            )
        if rt.status_subresource and subresource == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            return result
        if rt.status_subresource:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        for field in ("name", "namespace", "uid", "creationTimestamp", "generation"):
            if field in old_meta:
                meta[field] = old_meta[field]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        return new

    def _commit(
        self, rt: ResourceType, version: str, key: Key, verb: str, event: str, obj: Obj
    ) -> Obj:
        """Validate, store under a new resourceVersion, log the event; caller holds the lock."""
        self._validate(rt, version, key[3], obj)
        self._revision += 1
        _meta(obj)["resourceVersion"] = str(self._revision)
        self._objects[key] = obj
        self._types[key[:2]] = rt
        self._record(rt, key, event, obj, Write(verb, str(self._revision), True, obj))
        return self._served(obj, rt, version)

    def _record(self, rt: ResourceType, key: Key, event: str, obj: Obj, write: Write) -> None:
        self._events.append(Event(self._revision, rt, key[2], event, copy.deepcopy(obj)))
        self._history.setdefault(key, []).append(
            Write(write.verb, write.resource_version, write.changed, copy.deepcopy(write.obj))
        )
        self._cond.notify_all()

    def _validate(self, rt: ResourceType, version: str, name: str, obj: Obj) -> None:
        validator = rt.validators.get(version)
        if validator is None:
            return
        violations = schema_violations(validator, {**obj, "apiVersion": rt.api_version(version)})
        if violations:
            raise invalid(rt, name, violations)

    def _delete_contents(self, namespace: str) -> None:
        """Namespaced objects go with their namespace (at once; no Terminating phase)."""
        for key in [k for k in self._objects if k[2] == namespace]:
            obj = self._objects.pop(key)
            self._revision += 1
            _meta(obj)["resourceVersion"] = str(self._revision)
            self._record(
                self._types[key[:2]],
                key,
                "DELETED",
                obj,
                Write("delete", str(self._revision), True, None),
            )

    def _existing(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        obj = self._objects.get((rt.group, rt.plural, namespace, name))
        if obj is None:
            raise not_found(rt, name)
        return obj

    def _check_namespace(self, namespace: str) -> None:
        if ("", "namespaces", "", namespace) not in self._objects:
            raise ApiError(
                404, "NotFound", f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )  # fmt: skip

    @staticmethod
    def _check_name(rt: ResourceType, name: str) -> None:
        try:
            check_dns1123_subdomain("metadata.name", name)
        except InputError as exc:
            raise invalid(rt, name, [("metadata.name", f"Invalid value: {exc}")]) from exc

    @staticmethod
    def _patcher(rt: ResourceType, content_type: str, patch: Any) -> Callable[[Obj], Obj]:
        if content_type == STRATEGIC_PATCH and rt.custom:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {JSON_PATCH}, {MERGE_PATCH}, application/apply-patch+yaml",
            )
        if content_type in (MERGE_PATCH, STRATEGIC_PATCH):
            return lambda obj: merge_patch(obj, _without_directives(patch))

        if content_type == JSON_PATCH:

            def apply(obj: Obj) -> Obj:
                try:
                    return json_patch(obj, patch)  # type: ignore[no-any-return]
                except PatchError as exc:
                    raise ApiError(422, "Invalid", str(exc)) from exc

            return apply
        raise ApiError(
            415, "UnsupportedMediaType", f"unsupported patch content type {content_type!r}"
        )

    def _expired(self, since: int) -> bool:
        """True when events after `since` have already left the log."""
        return bool(self._events) and since < self._events[0].resource_version - 1

    @staticmethod
    def _expired_event(since: int) -> Obj:
        status = status_body(410, "Expired", f"too old resource version: {since}", {})
        return {"type": "ERROR", "object": status}

    @staticmethod
    def _selected(
        key: Key, obj: Obj, rt: ResourceType, namespace: str | None, match: "Matcher"
    ) -> bool:
        return key[:2] == (rt.group, rt.plural) and (namespace in (None, key[2])) and match(obj)

    @staticmethod
    def _event_selected(
        event: Event, rt: ResourceType, namespace: str | None, match: "Matcher"
    ) -> bool:
        same = (event.rt.group, event.rt.plural) == (rt.group, rt.plural)
        return same and namespace in (None, event.namespace) and match(event.obj)

    @staticmethod
    def _served(obj: Obj, rt: ResourceType, version: str) -> Obj:
        """A copy of the stored object as the requested version (schemas are the same)."""
        return {**copy.deepcopy(obj), "apiVersion": rt.api_version(version), "kind": rt.kind}


Matcher = Callable[[Mapping[str, Any]], bool]


def _without_directives(patch: Any) -> Any:
    """A strategic merge patch minus its `$`-directives (none matter for the types stored)."""
    if isinstance(patch, dict):
        return {k: _without_directives(v) for k, v in patch.items() if not k.startswith("$")}
    return patch


def matcher(label_selector: str | None, field_selector: str | None) -> Matcher:
    """The objects a `labelSelector` (k=v, k==v, k!=v, k, !k) and a `fieldSelector`
    (metadata.name / metadata.namespace, = or !=) select; comma means "and"."""
    tests: list[Matcher] = []
    for term in filter(None, (label_selector or "").split(",")):
        tests.append(_term(term.strip(), lambda o: _meta_of(o).get("labels") or {}))
    for term in filter(None, (field_selector or "").split(",")):
        tests.append(_term(term.strip(), _fields))
    return lambda obj: all(test(obj) for test in tests)


def _meta_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = _meta_of(obj)
    return {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace")}


def _term(term: str, values: Callable[[Mapping[str, Any]], Mapping[str, Any]]) -> Matcher:
    for op in ("!=", "==", "="):
        if op in term:
            key, want = (part.strip() for part in term.split(op, 1))
            if op == "!=":
                return lambda obj: values(obj).get(key) != want
            return lambda obj: values(obj).get(key) == want
    if term.startswith("!"):
        return lambda obj: term[1:] not in values(obj)
    return lambda obj: term in values(obj)
