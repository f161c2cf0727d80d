"""The controller's resources: `CanaryRollout` and `RolloutPolicy` (group rollout.cello.dev).

The pydantic models here are the single source of truth: the controller validates objects
with them, and `crd_documents()` turns them into the CustomResourceDefinitions installed from
`deploy/` (a test checks that the committed files equal the generated ones). The status
reuses the engine's `RolloutState` (so the stored status *is* the state a restarted
controller resumes from) and the judge's `MetricVerdict` (so `lastAnalysis` has the shape
`rollout analyze --output json` prints).

Requests that must happen exactly once (abort, promote, resume, retry, approve:<step>) are
annotations `request.rollout.cello.dev/<id>: <command>`: each request has a key of its own, so two
requests never overwrite each other, and the controller records every id it applied in
`status.handledRequests` in the same status write as the change it caused, so a request is
never applied twice. `spec.paused` is declarative; the controller remembers the value it
last applied in `status.specPaused` and acts on the edge.
"""

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from rollout.engine import Command, RolloutState
from rollout.errors import InputError
from rollout.judge import MetricVerdict, Verdict
from rollout.policy import Model, PolicySpec, RolloutPolicy
from rollout.target import Target

GROUP = "rollout.cello.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CANARY_ROLLOUTS = "canaryrollouts"
ROLLOUT_POLICIES = "rolloutpolicies"
REQUEST_PREFIX = f"request.{GROUP}/"

DnsLabel = Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
DnsName = Annotated[
    str,
    Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
]


class TargetSpec(Model):
    """The managed route and its two subsets, as the target flags of `rollout run` give them."""

    virtual_service: DnsName = Field(description="VirtualService holding the managed route.")
    route: str | None = Field(default=None, description="HTTP route name (optional if unique).")
    destination_rule: DnsName | None = Field(
        default=None, description="DestinationRule of the subsets (default: the route's host's)."
    )
    stable: DnsLabel = Field(description="Stable subset.")
    canary: DnsLabel = Field(description="Canary subset; changing it starts a new run.")

    def target(self, namespace: str) -> Target:
        """The engine's Target in `namespace` (checks stable != canary)."""
        return Target(
            namespace=namespace,
            virtual_service=self.virtual_service,
            route=self.route,
            stable=self.stable,
            canary=self.canary,
            destination_rule=self.destination_rule,
        )


class PolicyRef(Model):
    """A RolloutPolicy object in the CanaryRollout's namespace."""

    name: DnsLabel


class CanaryRolloutSpec(Model):
    """What to roll out, under which policy; exactly one of `policy` and `policyRef`."""

    target: TargetSpec
    policy: PolicySpec | None = Field(default=None, description="Inline RolloutPolicy spec.")
    policy_ref: PolicyRef | None = Field(default=None, description="A RolloutPolicy's name.")
    paused: bool = Field(default=False, description="Hold the current weight while true.")

    @model_validator(mode="after")
    def _one_policy(self) -> Self:
        if (self.policy is None) == (self.policy_ref is None):
            raise ValueError("give exactly one of policy and policyRef")
        return self


class ObjectMeta(BaseModel):
    """The parts of metadata the controller reads; the rest is kept by the API server."""

    model_config = ConfigDict(extra="ignore", frozen=True, alias_generator=to_camel)

    name: str
    namespace: str = "default"
    generation: int = 1
    resource_version: str = ""
    annotations: dict[str, str] = Field(default_factory=dict)


class Run(BaseModel):
    """The subsets a run started with: a spec naming another canary starts a new run."""

    model_config = ConfigDict(frozen=True)

    stable: str
    canary: str


class LastAnalysis(BaseModel):
    """The latest step analysis: its verdict and, per metric, values, requests and limits."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    at: datetime
    step: int
    weight: int
    verdict: Verdict
    reason: str
    duration_seconds: float
    metrics: tuple[MetricVerdict, ...]


class Condition(BaseModel):
    """A Kubernetes-style condition (`Complete` says whether the run has ended, and how)."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition_time: datetime


# The engine's field names, as the status spells them (the rest is plain camelCase).
_STATUS_NAMES = {"weight": "canaryWeight", "inconclusive_streak": "inconclusiveChecks"}


def _status_alias(name: str) -> str:
    return _STATUS_NAMES.get(name, to_camel(name))


class CanaryRolloutStatus(RolloutState):
    """The engine's state plus what the controller needs to resume and to report."""

    model_config = ConfigDict(alias_generator=_status_alias, populate_by_name=True)

    run: Run | None = None
    observed_generation: int = 0
    last_analysis: LastAnalysis | None = None
    conditions: tuple[Condition, ...] = ()
    handled_requests: tuple[str, ...] = ()
    spec_paused: bool = False

    def state(self) -> RolloutState:
        """The engine's part of the status."""
        return RolloutState.model_validate(self.model_dump(include=set(RolloutState.model_fields)))


class CanaryRollout(BaseModel):
    """A CanaryRollout object as read from the API server."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    api_version: Literal["rollout.cello.dev/v1alpha1"]
    kind: Literal["CanaryRollout"]
    metadata: ObjectMeta
    spec: CanaryRolloutSpec
    status: CanaryRolloutStatus | None = None

    @property
    def key(self) -> str:
        """`namespace/name`: how logs, metrics and the scheduler name a rollout."""
        return f"{self.metadata.namespace}/{self.metadata.name}"

    def all_requests(self) -> list[tuple[str, str]]:
        """(id, command) of every request annotation, handled or not, oldest id first."""
        return sorted(
            (key.removeprefix(REQUEST_PREFIX), value)
            for key, value in self.metadata.annotations.items()
            if key.startswith(REQUEST_PREFIX)
        )

    def requests(self) -> list[tuple[str, str]]:
        """(id, command) of the request annotations not handled yet, oldest id first."""
        handled = set(self.status.handled_requests) if self.status else set()
        return [(rid, cmd) for rid, cmd in self.all_requests() if rid not in handled]


class ManifestMeta(Model):
    """What a CanaryRollout manifest may say in metadata (the API server fills the rest)."""

    name: DnsName
    namespace: DnsLabel | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class CanaryRolloutManifest(Model):
    """A CanaryRollout as written in YAML (`rollout validate`): unknown keys are errors."""

    api_version: Literal["rollout.cello.dev/v1alpha1"]
    kind: Literal["CanaryRollout"]
    metadata: ManifestMeta
    spec: CanaryRolloutSpec


def request_command(value: str, at: datetime) -> Command:
    """The engine command a request annotation stands for: `abort`, `promote`, `resume`,
    `retry`, or `approve:<step>` (an approval names the step whose gate it clears, so a late
    one can never clear a later gate)."""
    name, _, step = value.partition(":")
    return Command(at, name, by="request", step=int(step) if step.isdigit() else None)


def parse_rollout(obj: dict[str, Any]) -> CanaryRollout:
    """A CanaryRollout from the API; InputError with the first problem when it is invalid."""
    try:
        return CanaryRollout.model_validate(obj)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InputError(f"invalid CanaryRollout: {where}: {error['msg']}") from None


def policy_from_object(obj: dict[str, Any]) -> RolloutPolicy:
    """A RolloutPolicy object from the API (its metadata reduced to the name)."""
    doc = {**obj, "metadata": {"name": obj.get("metadata", {}).get("name", "")}}
    try:
        return RolloutPolicy.model_validate(doc)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InputError(f"invalid RolloutPolicy: {where}: {error['msg']}") from None


def inline_policy(name: str, spec: PolicySpec) -> RolloutPolicy:
    """The RolloutPolicy an inline `spec.policy` stands for (named after the rollout)."""
    return RolloutPolicy.model_validate(
        {"apiVersion": API_VERSION, "kind": "RolloutPolicy", "metadata": {"name": name},
         "spec": spec}
    )  # fmt: skip


# ---- CRD generation ------------------------------------------------------------------------


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema made into a Kubernetes structural schema: references inlined,
    `X | None` as `nullable`, unions of objects merged into one object (pydantic checks
    which variant), constants as enums; JSON-Schema-only keywords dropped."""
    defs = schema.get("$defs", {})
    return _node(schema, defs)


_DROPPED = {"title", "default", "$defs", "discriminator", "additionalProperties", "examples"}


def _node(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        resolved = _node(defs[node["$ref"].rsplit("/", 1)[1]], defs)
        return {**resolved, **_node({k: v for k, v in node.items() if k != "$ref"}, defs)}
    variants = node.get("anyOf") or node.get("oneOf")
    if variants:
        rest = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
        return {**_union([_node(v, defs) for v in variants]), **_node(rest, defs)}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {name: _node(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _node(value, defs)
        elif key == "prefixItems":
            out["items"] = _union([_node(v, defs) for v in value])
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            # OpenAPI v3.0 spells these as booleans; the looser bound is enough here.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
        elif key not in ("maxItems", "minItems") or node.get("type") == "array":
            out[key] = value
    if out.get("type") == "object" and "properties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _union(variants: list[dict[str, Any]]) -> dict[str, Any]:
    """One schema for `a | b | None`: null adds `nullable`, objects merge their properties."""
    nullable = any(v.get("type") == "null" for v in variants)
    real = [v for v in variants if v.get("type") != "null"]
    merged: dict[str, Any] = dict(real[0]) if real else {}
    for other in real[1:]:
        if merged.get("type") == "object" and other.get("type") == "object":
            props = {**other.get("properties", {}), **merged.get("properties", {})}
            for name, sub in other.get("properties", {}).items():
                if "enum" in sub and "enum" in props[name] and props[name] is not sub:
                    enum = [*props[name]["enum"], *sub["enum"]]
                    props[name] = {**props[name], "enum": list(dict.fromkeys(enum))}
            required = set(merged.get("required", [])) & set(other.get("required", []))
            merged = {**merged, "properties": props, "required": sorted(required)}
            if not merged["required"]:
                merged.pop("required")
        elif "enum" in merged and "enum" in other:
            merged["enum"] = list(dict.fromkeys([*merged["enum"], *other["enum"]]))
    if nullable:
        merged["nullable"] = True
    return merged


def _crd(
    kind: str, plural: str, short: str, spec_schema: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    properties: dict[str, Any] = {"spec": spec_schema}
    properties.update(extra.get("properties", {}))
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    **properties,
                },
            }
        },
    }
    version.update({k: v for k, v in extra.items() if k != "properties"})
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": ["cello"],
            },
            "scope": "Namespaced",
            "versions": [version],
        },
    }


PRINTER_COLUMNS = (
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Weight", "type": "integer", "jsonPath": ".status.canaryWeight"},
    {"name": "Step", "type": "integer", "jsonPath": ".status.step"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)


def crd_documents() -> tuple[dict[str, Any], dict[str, Any]]:
    """The CanaryRollout and RolloutPolicy CRDs, generated from the models above."""
    rollout_schema = CanaryRolloutSpec.model_json_schema(by_alias=True, mode="validation")
    status_schema = CanaryRolloutStatus.model_json_schema(by_alias=True, mode="serialization")
    policy_schema = PolicySpec.model_json_schema(by_alias=True, mode="validation")
    canary = _crd(
        "CanaryRollout",
        CANARY_ROLLOUTS,
        "cr",
        structural(rollout_schema),
        {
            "properties": {"status": structural(status_schema)},
            "subresources": {"status": {}},
            "additionalPrinterColumns": list(PRINTER_COLUMNS),
        },
    )
    policy = _crd("RolloutPolicy", ROLLOUT_POLICIES, "rp", structural(policy_schema), {})
    return canary, policy


def status_of(
    state: RolloutState, *, run: Run, generation: int, previous: CanaryRolloutStatus | None
) -> CanaryRolloutStatus:
    """A new status for `state`, keeping what the controller tracks beside the engine."""
    kept = previous or CanaryRolloutStatus()
    condition = Condition(
        type="Complete",
        status="True" if state.terminal else "False",
        reason=str(state.phase),
        message=state.reason,
        last_transition_time=state.history[-1].at if state.history else _EPOCH,
    )
    return CanaryRolloutStatus.model_validate(
        {**kept.model_dump(), **state.model_dump(), "run": run,
         "observed_generation": generation, "conditions": (condition,)}
    )  # fmt: skip


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


CRD_FILES = ("crd-canaryrollouts.yaml", "crd-rolloutpolicies.yaml")


def crd_files() -> dict[str, str]:
    """The CRD manifests as committed in deploy/, by file name."""
    header = "# Generated from rollout/resources.py: python -m rollout.resources deploy\n"
    return {
        name: header + yaml.safe_dump(doc, sort_keys=False, width=100)
        for name, doc in zip(CRD_FILES, crd_documents(), strict=True)
    }


if __name__ == "__main__":
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "deploy")
    for file_name, text in crd_files().items():
        (directory / file_name).write_text(text)
