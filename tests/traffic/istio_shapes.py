"""Builders for the VirtualServices and DestinationRules the traffic tests use.

Kept in one place so unit and integration tests describe shapes the same way.
"""

from typing import Any

Obj = dict[str, Any]

NAMESPACE = "demo"
SERVICE = "cello-app"
FQDN = f"{SERVICE}.{NAMESPACE}.svc.cluster.local"


def dest(subset: str | None, weight: int | None = None, host: str = SERVICE) -> Obj:
    """One entry of an HTTP route's `route` list."""
    destination: Obj = {"host": host}
    if subset is not None:
        destination["subset"] = subset
    entry: Obj = {"destination": destination}
    if weight is not None:
        entry["weight"] = weight
    return entry


def split_route(stable: int = 90, canary: int = 10, host: str = SERVICE, **extra: Any) -> Obj:
    """An HTTP route splitting v1/v2, with any other route fields given as keywords."""
    return {**extra, "route": [dest("v1", stable, host), dest("v2", canary, host)]}


def virtual_service(*http: Obj, name: str = SERVICE, **spec: Any) -> Obj:
    """A VirtualService for the cello-app host with the given HTTP routes and spec fields."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"hosts": [SERVICE], **spec, "http": list(http)},
    }


def destination_rule(*subsets: str, name: str = SERVICE, host: str = SERVICE, **spec: Any) -> Obj:
    """A DestinationRule with one subset per name, selected by the `version` label."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "host": host,
            **spec,
            "subsets": [{"name": s, "labels": {"version": s}} for s in subsets],
        },
    }
