"""The documents clients read before they act: discovery, `/version`, OpenAPI v3, tables.

kubectl finds resources through legacy discovery (`/api`, `/apis`, group versions); it is
enough for kubectl 1.32, which falls back to it when the aggregated form is not offered.
`kubectl apply` validates through OpenAPI v3: when a resource's PATCH operation declares
the `fieldValidation` query parameter, kubectl leaves validation to the server (which this
stand-in does against the CRD schema), so the documents here carry that parameter and the
CRDs' own schemas. OpenAPI v2 is not served: kubectl reads it only as protobuf.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rollout.sandbox.kuberesources import ResourceTable, ResourceType

Obj = dict[str, Any]

KUBERNETES_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-cello-sandbox"}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
# Built-in types have no schema here: any object is accepted (and stored as given).
_ANY_OBJECT: Obj = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def version() -> Obj:
    return {**KUBERNETES_VERSION, "goVersion": "go1.23", "platform": "linux/amd64"}


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def core_versions() -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}


def api_group(group: str, versions: list[str]) -> Obj:
    entries = [{"groupVersion": _group_version(group, v), "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def api_groups(table: ResourceTable) -> Obj:
    groups = [api_group(g, vs) for g, vs in table.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(table: ResourceTable, group: str, version: str) -> Obj:
    """The APIResourceList of one group version (with `<plural>/status` entries)."""
    resources: list[Obj] = []
    for rt in table.in_group_version(group, version):
        resources.append(
            {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": VERBS,
                "shortNames": list(rt.short_names),
            }
        )
        if rt.status_subresource:
            resources.append(
                {
                    "name": f"{rt.plural}/status",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": _group_version(group, version),
        "resources": resources,
    }


# --- OpenAPI v3 ---------------------------------------------------------------------------


def _definition_name(rt: ResourceType, version: str) -> str:
    """`io.istio.networking.v1.VirtualService`, the API server's naming of CRD schemas."""
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{version}.{rt.kind}"


def _operations(rt: ResourceType, version: str) -> dict[str, Obj]:
    """Paths of one resource: every write declares `fieldValidation` (see module doc)."""
    gvk = {"group": rt.group, "version": version, "kind": rt.kind}
    ref = {"$ref": f"#/components/schemas/{_definition_name(rt, version)}"}
    body = {"content": {"application/json": {"schema": ref}}}
    field_validation = {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}

    def op(action: str, *, writes: bool = False) -> Obj:
        operation: Obj = {
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "responses": {"200": body},
        }
        if writes:
            operation["parameters"] = [field_validation]
            operation["requestBody"] = body
        return operation

    prefix = f"/apis/{rt.group}/{version}" if rt.group else "/api/v1"
    scope = f"{prefix}/namespaces/{{namespace}}" if rt.namespaced else prefix
    collection = f"{scope}/{rt.plural}"
    item = {
        "get": op("get"),
        "put": op("put", writes=True),
        "patch": op("patch", writes=True),
        "delete": op("delete"),
    }
    return {
        collection: {"get": op("list"), "post": op("post", writes=True)},
        f"{collection}/{{name}}": item,
    }


def _schema(rt: ResourceType, version: str) -> Obj:
    schema = dict(rt.schemas.get(version, _ANY_OBJECT))
    gvk = {"group": rt.group, "version": version, "kind": rt.kind}
    return {**schema, "x-kubernetes-group-version-kind": [gvk]}


def openapi_v3(table: ResourceTable, group: str, version: str) -> Obj:
    """The OpenAPI v3 document of one group version."""
    paths: dict[str, Obj] = {}
    schemas: dict[str, Obj] = {}
    for rt in table.in_group_version(group, version):
        paths.update(_operations(rt, version))
        schemas[_definition_name(rt, version)] = _schema(rt, version)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_v3_index(table: ResourceTable) -> Obj:
    """`/openapi/v3`: where each group version's document is, with a content hash (clients
    cache the documents by that URL)."""
    paths: dict[str, Obj] = {}
    for group, versions in table.group_versions().items():
        for version in versions:
            key = f"apis/{group}/{version}" if group else "api/v1"
            document = json.dumps(openapi_v3(table, group, version), sort_keys=True)
            digest = hashlib.sha256(document.encode()).hexdigest()[:32].upper()
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}


# --- tables (`kubectl get` without -o) ----------------------------------------------------


def _age(created: str | None, now: datetime) -> str:
    if not created:
        return "<unknown>"
    seconds = int((now - datetime.fromisoformat(created.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * 2:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


# A CRD without additionalPrinterColumns (and every built-in type here) shows its age.
_AGE_COLUMN: Obj = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _cell(obj: Mapping[str, Any], column: Mapping[str, Any], now: datetime) -> Any:
    """A printer column's value: a simple `.a.b` jsonPath; dates as ages, lists as JSON."""
    value: Any = obj
    for key in str(column.get("jsonPath", "")).strip(".").split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if column.get("type") == "date":
        return _age(value, now)
    return json.dumps(value) if isinstance(value, list | dict) else value


def table(
    rt: ResourceType, version: str, objects: Sequence[Mapping[str, Any]], resource_version: str
) -> Obj:
    """A meta.k8s.io Table with NAME and the type's printer columns, which kubectl prints
    as it is (`kubectl get` without -o)."""
    now = datetime.now(UTC)
    extra = rt.printer_columns.get(version) or (_AGE_COLUMN,)
    columns: list[Obj] = [{"name": "Name", "type": "string", "format": "name", "priority": 0}]
    for column in extra:
        columns.append(
            {
                "name": column["name"],
                "type": "string" if column.get("type") == "date" else column.get("type", "string"),
                "format": column.get("format", ""),
                "description": column.get("description", ""),
                "priority": column.get("priority", 0),
            }
        )
    rows: list[Obj] = []
    for obj in objects:
        meta: Obj = obj.get("metadata") or {}
        partial: Obj = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1"}
        partial["metadata"] = meta
        cells = [meta.get("name"), *(_cell(obj, column, now) for column in extra)]
        rows.append({"cells": cells, "object": partial})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": columns,
        "rows": rows,
    }
