"""The Istio router: sets the stable/canary weights of one route of a VirtualService.

Why it works the way it does:
- Only the two `weight` fields of the managed route may change. The object is copied as read,
  those two weights are set in the copy, and only the copy's `spec.http` goes back, as a JSON
  merge patch: TLS/TCP routes, labels and annotations are never sent, and no field passes
  through a typed model that could drop it (how a peer tool once lost a route's `retries`,
  peers.md).
- The merge patch carries `metadata.resourceVersion` as read. The API server takes that as a
  precondition and answers 409 when someone wrote in between, so the routes we send back are
  exactly the ones it holds. (A JSON patch would name the weights by array index; applied to
  a newer object it can fail with 422 before the server compares versions, turning a race
  into "bad input".) On 409 we re-read, re-check and re-apply, a bounded number of times.
- The whole resulting object is checked against Istio's CRD schema before anything is sent
  (the check the API stand-in makes too), and nothing is sent when the weights are already
  right.
- Every problem with the objects is an InputError that names the object (exit 2, nothing
  written); API trouble is an InfraError (exit 3).
"""

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import structlog
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout.errors import InfraError, InputError
from rollout.target import Target
from rollout.traffic.schema import check_istio

Obj = dict[str, Any]

GROUP = "networking.istio.io"
# Istio serves v1 since 1.22; older meshes only have v1beta1. Both hold the same fields.
PREFERRED_VERSIONS = ("v1", "v1beta1")
# A rollout retries a conflicting write this often before giving up (exit 3).
MAX_ATTEMPTS = 5
# Seconds before a hung API server counts as unreachable, so a rollout never hangs forever.
REQUEST_TIMEOUT = 30


@dataclass(frozen=True)
class Kind:
    """An Istio networking kind, as the API names it."""

    name: str
    plural: str


VIRTUAL_SERVICE = Kind("VirtualService", "virtualservices")
DESTINATION_RULE = Kind("DestinationRule", "destinationrules")


class ConflictError(InfraError):
    """The object changed since we read it (HTTP 409). Retried; exit 3 if it never settles."""


class Split(NamedTuple):
    """The traffic shares, in percent, of the stable and canary subsets."""

    stable: int
    canary: int

    @classmethod
    def canary_at(cls, weight: int) -> "Split":
        """The split that sends `weight` % to the canary and the rest to stable."""
        check_weight(weight)
        return cls(stable=100 - weight, canary=weight)


def check_weight(weight: object) -> int:
    """Return `weight` if it is an integer percentage, else raise an InputError."""
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
        raise InputError(f"weight {weight!r}: must be an integer from 0 to 100")
    return weight


@dataclass(frozen=True)
class ManagedRoute:
    """Where the managed route sits in `spec.http`, and its two destinations in its `route`."""

    index: int
    label: str
    host: str
    stable: int
    canary: int


@dataclass(frozen=True)
class WeightChange:
    """What one set-weight did: the split before and after, and whether anything was sent."""

    target: Target
    route: str
    before: Split
    after: Split
    written: bool
    resource_version: str
    attempts: int

    def __str__(self) -> str:
        where = f"{_vs_name(self.target)} {self.route}"
        stable, canary = self.target.stable, self.target.canary

        def shares(split: Split) -> str:
            return f"{stable} {split.stable} % / {canary} {split.canary} %"

        if not self.written:
            return f"{where}: already {shares(self.after)}; nothing written"
        return f"{where}: {shares(self.before)} -> {shares(self.after)}"


def object_name(kind: Kind, namespace: str, name: str) -> str:
    """How errors name an object: `VirtualService demo/cello-app`."""
    return f"{kind.name} {namespace}/{name}"


def _vs_name(target: Target) -> str:
    return object_name(VIRTUAL_SERVICE, target.namespace, target.virtual_service)


# --- pure logic: finding the route, reading and setting the split --------------------------


def _destinations(route: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(route.get("route") or [])


def _subset(destination: Mapping[str, Any]) -> str | None:
    subset = (destination.get("destination") or {}).get("subset")
    return subset if isinstance(subset, str) else None


def _host(destination: Mapping[str, Any]) -> str:
    return str((destination.get("destination") or {}).get("host", ""))


def route_label(route: Mapping[str, Any], index: int) -> str:
    """How errors name an HTTP route: by its name, or by its position when it has none."""
    name = route.get("name")
    return f'route "{name}"' if name else f"route http[{index}]"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def find_route(vs: Mapping[str, Any], target: Target) -> ManagedRoute:
    """The managed HTTP route: the one named `target.route`, else the single route that holds
    both subsets. Anything else (none, several, extra destinations) is an InputError, because
    guessing would move traffic that nobody asked us to move.
    """
    where = _vs_name(target)
    routes: Sequence[Mapping[str, Any]] = (vs.get("spec") or {}).get("http") or []
    if not routes:
        raise InputError(f"{where}: has no HTTP routes")
    if target.route is not None:
        wanted = f'HTTP route named "{target.route}"'
        found = [i for i, r in enumerate(routes) if r.get("name") == target.route]
    else:
        wanted = f"HTTP route holding both subsets {target.stable} and {target.canary}"
        pair = {target.stable, target.canary}
        found = [i for i, r in enumerate(routes) if pair <= {_subset(d) for d in _destinations(r)}]
    all_labels = ", ".join(route_label(r, i) for i, r in enumerate(routes))
    if not found:
        raise InputError(f"{where}: no {wanted} (routes: {all_labels})")
    if len(found) > 1:
        labels = ", ".join(route_label(routes[i], i) for i in found)
        fix = "route names must be unique" if target.route else "name one with --route"
        raise InputError(f"{where}: {len(found)} routes match ({labels}); {fix}")
    return _managed_route(routes[found[0]], found[0], target)


def _managed_route(route: Mapping[str, Any], index: int, target: Target) -> ManagedRoute:
    """Check that `route` holds exactly the stable and canary destinations, of one host."""
    where = f"{_vs_name(target)}: {route_label(route, index)}"
    destinations = _destinations(route)
    subsets = [_subset(d) for d in destinations]
    if len(destinations) != 2 or set(subsets) != {target.stable, target.canary}:
        names = ", ".join(_subset(d) or _host(d) or "?" for d in destinations)
        raise InputError(
            f"{where} has {_plural(len(destinations), 'destination')} ({names}); expected "
            f"exactly the stable and canary subsets ({target.stable}, {target.canary})"
        )
    hosts = {_host(d) for d in destinations}
    if len({service_key(h, target.namespace) for h in hosts}) != 1:
        raise InputError(
            f"{where} sends {target.stable} and {target.canary} to different hosts "
            f"({', '.join(sorted(hosts))}); both subsets must be of one service"
        )
    return ManagedRoute(
        index=index,
        label=route_label(route, index),
        host=_host(destinations[0]),
        stable=subsets.index(target.stable),
        canary=subsets.index(target.canary),
    )


def _route_destinations(vs: Mapping[str, Any], route: ManagedRoute) -> list[Any]:
    destinations: list[Any] = vs["spec"]["http"][route.index]["route"]
    return destinations


def read_split(vs: Mapping[str, Any], route: ManagedRoute, target: Target) -> Split:
    """The current weights of the two destinations; an absent weight is Istio's default, 0."""
    destinations = _route_destinations(vs, route)

    def weight(position: int) -> int:
        value = destinations[position].get("weight", 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{_vs_name(target)}: {route.label} has weight {value!r}")
        return value

    return Split(stable=weight(route.stable), canary=weight(route.canary))


def with_split(vs: Mapping[str, Any], route: ManagedRoute, split: Split) -> Obj:
    """A copy of `vs` in which only the two weights of the managed route are `split`."""
    updated = copy.deepcopy(dict(vs))
    destinations = _route_destinations(updated, route)
    destinations[route.stable]["weight"] = split.stable
    destinations[route.canary]["weight"] = split.canary
    return updated


def weight_patch(updated: Mapping[str, Any], resource_version: str) -> Obj:
    """The merge patch that turns the object read at `resource_version` into `updated`, an
    object that differs from it in the HTTP routes only. Valid only on that version: the
    server refuses it (409) once the object has changed.
    """
    return {
        "metadata": {"resourceVersion": resource_version},
        "spec": {"http": updated["spec"]["http"]},
    }


# --- the DestinationRule ------------------------------------------------------------------


def service_key(host: str, namespace: str) -> str:
    """The service a host names, as `name.namespace`.

    Istio reads a short host ("cello-app") in the namespace of the object holding it, so
    "cello-app" in demo and "cello-app.demo.svc.cluster.local" are the same service, whatever
    the cluster domain. Other hosts (external names) are compared as written.
    """
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}"
    if len(parts) >= 3 and parts[2] == "svc":
        return f"{parts[0]}.{parts[1]}"
    return host


def _dr_host(dr: Mapping[str, Any]) -> str:
    return str((dr.get("spec") or {}).get("host", ""))


def _dr_name(dr: Mapping[str, Any]) -> str:
    meta = dr.get("metadata") or {}
    return object_name(DESTINATION_RULE, meta.get("namespace", "?"), meta.get("name", "?"))


def pick_destination_rule(drs: Sequence[Obj], host: str, namespace: str) -> Obj:
    """The one DestinationRule of `namespace` whose host is the route's service."""
    key = service_key(host, namespace)
    found = [dr for dr in drs if service_key(_dr_host(dr), namespace) == key]
    if not found:
        raise InputError(
            f"no DestinationRule in namespace {namespace} for host {host!r}; "
            "name one with --destination-rule"
        )
    if len(found) > 1:
        names = ", ".join(_dr_name(dr) for dr in found)
        raise InputError(
            f"{names} are all for host {host!r}; name the one to use with --destination-rule"
        )
    return found[0]


def check_destination_rule(dr: Mapping[str, Any], host: str, target: Target) -> None:
    """The rule must be for the route's service and define both subsets."""
    where = _dr_name(dr)
    if service_key(_dr_host(dr), target.namespace) != service_key(host, target.namespace):
        raise InputError(
            f"{where}: is for host {_dr_host(dr)!r}, but {_vs_name(target)} routes to {host!r}"
        )
    subsets = [str(s.get("name")) for s in (dr.get("spec") or {}).get("subsets") or []]
    missing = [s for s in (target.stable, target.canary) if s not in subsets]
    if missing:
        raise InputError(
            f"{where}: has no subset {', '.join(missing)} (subsets: {', '.join(subsets) or 'none'})"
        )


# --- the cluster --------------------------------------------------------------------------


class IstioStore(Protocol):
    """Where Istio objects are read and written: the cluster, or a test double."""

    def get(self, kind: Kind, namespace: str, name: str) -> Obj: ...

    def get_all(self, kind: Kind, namespace: str) -> list[Obj]: ...

    def patch(self, kind: Kind, namespace: str, name: str, patch: Obj | list[Obj]) -> Obj: ...


def _api_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return str(exc.reason or exc.body or "")


class KubeIstioStore:
    """Istio objects through the Kubernetes API, at the version the cluster serves, with API
    failures turned into our errors: the caller never sees an ApiException.
    """

    def __init__(self, api_client: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api_client)
        self._apis = client.ApisApi(api_client)
        self._version: str | None = None

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        """The object, or InputError if it does not exist."""
        what = object_name(kind, namespace, name)
        return self._call(
            what, self._custom.get_namespaced_custom_object, namespace, kind.plural, name
        )

    def get_all(self, kind: Kind, namespace: str) -> list[Obj]:
        """All objects of `kind` in `namespace`."""
        what = f"{kind.plural} in namespace {namespace}"
        listing = self._call(
            what, self._custom.list_namespaced_custom_object, namespace, kind.plural
        )
        return list(listing.get("items") or [])

    def patch(self, kind: Kind, namespace: str, name: str, patch: Obj | list[Obj]) -> Obj:
        """Apply a JSON merge patch (an object) or a JSON patch (a list of operations);
        ConflictError when the resourceVersion it sets is stale.
        """
        content_type = "json-patch" if isinstance(patch, list) else "merge-patch"
        return self._call(
            object_name(kind, namespace, name),
            self._custom.patch_namespaced_custom_object,
            namespace,
            kind.plural,
            name,
            patch,
            _content_type=f"application/{content_type}+json",
        )

    def version(self) -> str:
        """The Istio networking version to use on this cluster (discovered once)."""
        if self._version is None:
            groups = self._request(f"the {GROUP} API group", self._apis.get_api_versions)
            served = {v.version for g in groups.groups if g.name == GROUP for v in g.versions}
            self._version = pick_version(served)
        return self._version

    def _call(self, what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
        result: Obj = self._request(what, method, GROUP, self.version(), *args, **kwargs)
        return result

    @staticmethod
    def _request(what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as exc:
            raise api_error(what, exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise InfraError(f"{what}: cannot reach the Kubernetes API: {exc}") from exc


def pick_version(served: set[str]) -> str:
    """The first of PREFERRED_VERSIONS among the `served` versions of networking.istio.io."""
    for version in PREFERRED_VERSIONS:
        if version in served:
            return version
    raise InputError(
        f"the cluster does not serve {GROUP} {' or '.join(PREFERRED_VERSIONS)}; is Istio installed?"
    )


def api_error(what: str, exc: ApiException) -> InputError | InfraError:
    """Not found and rejected input are the caller's (exit 2); the rest is infrastructure."""
    message = _api_message(exc)
    if exc.status == 404:
        return InputError(f"{what} not found")
    if exc.status == 409:
        return ConflictError(f"{what}: changed by another writer ({message})")
    if exc.status in (400, 422):
        return InputError(f"{what}: rejected by the API server: {message}")
    return InfraError(f"{what}: the Kubernetes API answered {exc.status}: {message}")


# --- the router ---------------------------------------------------------------------------

# Called with the VirtualService as read, just before the write: lets a test (or a caller
# that wants to know) act between our read and our write.
BeforeWrite = Callable[[Mapping[str, Any]], None]


@dataclass(frozen=True)
class _Reading:
    """One consistent read: the VirtualService, its managed route and the split it holds."""

    vs: Obj
    route: ManagedRoute
    split: Split

    @property
    def resource_version(self) -> str:
        return str(self.vs["metadata"]["resourceVersion"])


def destination_rule_of(store: IstioStore, target: Target, host: str) -> Obj:
    """The target's DestinationRule (--destination-rule, else the one for `host`), checked
    to hold both subsets."""
    if target.destination_rule is not None:
        dr = store.get(DESTINATION_RULE, target.namespace, target.destination_rule)
    else:
        drs = store.get_all(DESTINATION_RULE, target.namespace)
        dr = pick_destination_rule(drs, host, target.namespace)
    check_destination_rule(dr, host, target)
    return dr


class IstioRouter:
    """Reads and sets the split of a target's managed route."""

    def __init__(self, store: IstioStore) -> None:
        self._store = store

    def current_weights(self, target: Target) -> Split:
        """The split the managed route holds now (after checking route and subsets)."""
        return self._read(target).split

    def set_canary_weight(
        self, target: Target, weight: int, *, before_write: BeforeWrite | None = None
    ) -> WeightChange:
        """Send `weight` % to the canary and the rest to stable; re-read and retry on 409."""
        desired = Split.canary_at(weight)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            reading = self._read(target)
            if reading.split == desired:
                return _outcome(target, reading, desired, reading.resource_version, attempt)
            updated = with_split(reading.vs, reading.route, desired)
            check_istio(updated)
            if before_write is not None:
                before_write(reading.vs)
            try:
                resource_version = self._write(target, updated, reading.resource_version)
            except ConflictError:
                _events(target).info("traffic.weights.conflict", attempt=attempt)
                continue
            return _outcome(target, reading, desired, resource_version, attempt)
        raise ConflictError(
            f"{_vs_name(target)}: changed by another writer on each of {MAX_ATTEMPTS} "
            "attempts; weights not set"
        )

    def _read(self, target: Target) -> _Reading:
        vs = self._store.get(VIRTUAL_SERVICE, target.namespace, target.virtual_service)
        route = find_route(vs, target)
        destination_rule_of(self._store, target, route.host)
        return _Reading(vs=vs, route=route, split=read_split(vs, route, target))

    def _write(self, target: Target, updated: Obj, resource_version: str) -> str:
        patch = weight_patch(updated, resource_version)
        written = self._store.patch(
            VIRTUAL_SERVICE, target.namespace, target.virtual_service, patch
        )
        return str(written["metadata"]["resourceVersion"])


def _events(target: Target) -> Any:
    """A logger bound to the VirtualService, fetched at each use: a cached module-level logger
    would keep writing to the stream structlog was first configured with.
    """
    return structlog.get_logger(__name__).bind(
        namespace=target.namespace, virtual_service=target.virtual_service
    )


def _outcome(
    target: Target, reading: _Reading, after: Split, resource_version: str, attempts: int
) -> WeightChange:
    """Log and return what set_canary_weight did; written iff the split was not `after`."""
    change = WeightChange(
        target=target,
        route=reading.route.label,
        before=reading.split,
        after=after,
        written=reading.split != after,
        resource_version=resource_version,
        attempts=attempts,
    )
    _events(target).info(
        "traffic.weights.written" if change.written else "traffic.weights.unchanged",
        route=change.route,
        stable=after.stable,
        canary=after.canary,
        resource_version=resource_version,
        attempts=attempts,
    )
    return change


def router_for(api_client: client.ApiClient) -> IstioRouter:
    """A router that acts on the cluster behind `api_client`."""
    return IstioRouter(KubeIstioStore(api_client))
