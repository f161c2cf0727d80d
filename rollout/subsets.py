"""What an analysis measures: the service and the version label values of its two subsets.

Metrics select a subset's pods by the value of their `version` label (Istio's
`destination_version`, the `version` target label on Cello's series), which is what the
DestinationRule's subset says in `labels.version`. The service name used in queries is the
short name of the DestinationRule's host (`cello-app` for `cello-app.demo.svc.cluster.local`),
as Istio's `destination_service_name` has it.

`--stable-version`/`--canary-version` give the values directly; with both given the cluster
is not consulted at all, and the service is `--service` or else the VirtualService's name.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rollout.errors import InputError
from rollout.target import Target
from rollout.traffic.istio import (
    DESTINATION_RULE,
    VIRTUAL_SERVICE,
    IstioStore,
    destination_rule_of,
    find_route,
    object_name,
)

VERSION_LABEL = "version"


@dataclass(frozen=True)
class Subject:
    """The selection an analysis measures: one service's stable and canary versions."""

    namespace: str
    service: str
    stable_version: str
    canary_version: str


def subset_version(dr: Mapping[str, Any], subset: str) -> str:
    """The `labels.version` of the DestinationRule's `subset` (checked to exist before)."""
    meta = dr.get("metadata") or {}
    for entry in (dr.get("spec") or {}).get("subsets") or []:
        if entry.get("name") == subset:
            version = (entry.get("labels") or {}).get(VERSION_LABEL)
            if isinstance(version, str) and version:
                return version
    where = object_name(DESTINATION_RULE, meta.get("namespace", "?"), meta.get("name", "?"))
    raise InputError(
        f"{where}: subset {subset} has no labels.{VERSION_LABEL}; "
        "give --stable-version/--canary-version"
    )


def read_subject(store: IstioStore, target: Target) -> Subject:
    """The subject from the cluster: the route's host, its DestinationRule, both subsets."""
    vs = store.get(VIRTUAL_SERVICE, target.namespace, target.virtual_service)
    route = find_route(vs, target)
    dr = destination_rule_of(store, target, route.host)
    host = str((dr.get("spec") or {}).get("host") or route.host)
    return Subject(
        namespace=target.namespace,
        service=host.split(".")[0],
        stable_version=subset_version(dr, target.stable),
        canary_version=subset_version(dr, target.canary),
    )


def resolve_subject(
    target: Target,
    store: Callable[[], IstioStore],
    *,
    stable_version: str | None = None,
    canary_version: str | None = None,
    service: str | None = None,
) -> Subject:
    """The subject, reading the cluster (through `store()`) only for what was not given."""
    if stable_version is not None and canary_version is not None:
        return Subject(
            namespace=target.namespace,
            service=service or target.virtual_service,
            stable_version=stable_version,
            canary_version=canary_version,
        )
    found = read_subject(store(), target)
    return Subject(
        namespace=target.namespace,
        service=service or found.service,
        stable_version=stable_version or found.stable_version,
        canary_version=canary_version or found.canary_version,
    )
