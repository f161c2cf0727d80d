"""The resource types the Kubernetes API stand-in serves: one table, one entry per type.

Custom resources come from CustomResourceDefinition documents, so their versions, names,
scope, `status` subresource and openAPIV3Schema are the CRD's own: adding a CRD with a real
schema is adding its YAML to `CUSTOM_RESOURCE_DEFINITIONS` (or one `crd(...)` entry).
Built-in types carry no schema; the stand-in stores them as given.
"""

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from rollout.resources import crd_documents
from rollout.traffic.schema import ISTIO_CRDS, compile_schema, load_crds

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it is served and how writes to it are checked."""

    group: str  # "" for the core API
    versions: tuple[str, ...]
    plural: str
    kind: str
    namespaced: bool = True
    custom: bool = False  # a CRD: no strategic merge patch, resourceVersion required on PUT
    status_subresource: bool = False
    short_names: tuple[str, ...] = ()
    schemas: Mapping[str, Obj] = field(default_factory=dict)  # openAPIV3Schema by version
    printer_columns: Mapping[str, tuple[Obj, ...]] = field(default_factory=dict)  # by version
    validators: Mapping[str, jsonschema.Draft202012Validator] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_resource(self) -> str:
        """`virtualservices.networking.istio.io`, or `configmaps` for the core group: the
        name the API server uses in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:
        """`VirtualService.networking.istio.io`, as named in 422 messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version


def crd(definition: Mapping[str, Any]) -> ResourceType:
    """The resource a CustomResourceDefinition defines (served versions only)."""
    spec = definition["spec"]
    names = spec["names"]
    versions = [v for v in spec["versions"] if v.get("served", True)]
    schemas = {v["name"]: v["schema"]["openAPIV3Schema"] for v in versions}
    return ResourceType(
        group=spec["group"],
        versions=tuple(v["name"] for v in versions),
        plural=names["plural"],
        kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        custom=True,
        status_subresource=any("status" in (v.get("subresources") or {}) for v in versions),
        short_names=tuple(names.get("shortNames", ())),
        schemas=schemas,
        printer_columns={v["name"]: tuple(v.get("additionalPrinterColumns", ())) for v in versions},
        validators={name: compile_schema(schema) for name, schema in schemas.items()},
    )


CUSTOM_RESOURCE_DEFINITIONS: tuple[Mapping[str, Any], ...] = (
    *load_crds(ISTIO_CRDS),
    # The controller's own, generated from the models it validates with.
    *crd_documents(),
)

BUILTIN: tuple[ResourceType, ...] = (
    ResourceType("", ("v1",), "namespaces", "Namespace", namespaced=False, short_names=("ns",)),
    ResourceType("", ("v1",), "configmaps", "ConfigMap", short_names=("cm",)),
    # Notification and gate URLs and signing keys may come from Secrets (secretKeyRef).
    ResourceType("", ("v1",), "secrets", "Secret"),
    # Core and events.k8s.io Events are stored apart (the real server converts between them).
    ResourceType("", ("v1",), "events", "Event", short_names=("ev",)),
    ResourceType("events.k8s.io", ("v1",), "events", "Event", short_names=("ev",)),
    ResourceType("coordination.k8s.io", ("v1",), "leases", "Lease"),
)


@functools.cache
def default_resources() -> tuple[ResourceType, ...]:
    """Everything the stand-in serves: built-in types and the CRDs above (built once: the
    schema validators are immutable and shared by every server in a process)."""
    return (*BUILTIN, *(crd(definition) for definition in CUSTOM_RESOURCE_DEFINITIONS))


class ResourceTable:
    """Look-ups by URL parts: (group, version, plural) -> ResourceType."""

    def __init__(self, types: tuple[ResourceType, ...]) -> None:
        self.types = types
        self._by_path = {(t.group, v, t.plural): t for t in types for v in t.versions}

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def group_versions(self) -> dict[str, list[str]]:
        """Served versions by group, in table order (the first is the preferred one)."""
        groups: dict[str, list[str]] = {}
        for t in self.types:
            served = groups.setdefault(t.group, [])
            served.extend(v for v in t.versions if v not in served)
        return groups

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.types if t.group == group and version in t.versions]

    def by_kind(self, api_version: str, kind: str) -> tuple[ResourceType, str] | None:
        """The resource and version an object's apiVersion/kind name, if served."""
        group, _, version = api_version.rpartition("/")
        for rt in self.types:
            if (rt.group, rt.kind) == (group, kind) and version in rt.versions:
                return rt, version
        return None
