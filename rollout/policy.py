"""The `RolloutPolicy`: how far each step goes, how long it lasts, and what a healthy canary is.

A policy is YAML (`apiVersion: rollout.cello.dev/v1alpha1`, `kind: RolloutPolicy`) with
camelCase keys; `policies/default.yaml` is the annotated example of every field. Unknown
keys are errors, not silently ignored, so a typo never weakens a check. `load_policy`
reports a bad file as one line naming the file, the line, the field and the reason.
"""

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from rollout.errors import InputError
from rollout.metrics.labels import DURATION_PATTERN, check_label_name, format_duration
from rollout.metrics.labels import parse_duration as _parse_duration_text
from rollout.metrics.promql import RequestMetricKind, check_template


class LocatedError(ValueError):
    """A validation error about a part of the validated value, e.g. one element of a list.

    Pydantic locates an error at the field whose validator raised it; `path` (keys and
    indexes below that field) lets a list-level check point at the offending element.
    """

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


def _parse_duration(value: object) -> timedelta:
    """Durations are strings (`30s`, `1m30s`, `500ms`): a bare number has no unit."""
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValueError(f"duration {value} is not positive")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration like 30s, 1m30s or 500ms")
    return _parse_duration_text(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]


def _check_weight(value: int) -> int:
    if not 1 <= value <= 100:
        raise ValueError(f"weight {value} is outside 1-100")
    return value


Weight = Annotated[int, AfterValidator(_check_weight)]


def _check_quantile(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError(f"quantile {value} is outside (0, 1)")
    return value


def _check_label_name(value: str) -> str:
    try:
        return check_label_name("label", value)
    except InputError as exc:
        raise ValueError(str(exc).removeprefix("label: ")) from exc


LabelName = Annotated[str, AfterValidator(_check_label_name)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Model(BaseModel):
    """Shared config: camelCase keys in YAML, unknown keys rejected, no silent coercion."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        strict=True,
        frozen=True,
        # A rejected value may be a secret pasted where a reference belongs: never echo it.
        hide_input_in_errors=True,
    )


class Limits(Model):
    """When a measurement fails. At least one limit must be set; each set limit must hold.

    Relative limits compare the canary with the stable subset measured over the same
    window; when the stable measurement is inconclusive, so is every relative limit (the
    canary is never passed on a baseline we could not read).
    """

    max: NonNegative | None = Field(
        default=None,
        description="Absolute ceiling on the canary's value (error ratio 0-1, latency in ms).",
    )
    max_increase: NonNegative | None = Field(
        default=None,
        description="Ceiling on canary minus stable, in the metric's unit: for an error rate "
        "0.01 allows one percentage point more errors than stable.",
    )
    max_ratio: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        default=None,
        description="Ceiling on canary divided by stable (checked as canary <= maxRatio * "
        "stable, so a stable value of 0 fails any canary above 0); best for latency.",
    )

    @model_validator(mode="after")
    def _some_limit(self) -> Self:
        if self.max is None and self.max_increase is None and self.max_ratio is None:
            raise ValueError("set at least one of max, maxIncrease, maxRatio")
        return self


class MetricBase(Limits):
    """What every metric has: a name unique in the policy, and its limits."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")] = Field(
        description="Unique name of the metric (DNS-1123 label), used in output and guard."
    )


class RequestMetric(MetricBase):
    """A built-in request metric: error rate (5xx share, 0-1) or a latency quantile in ms."""

    kind: RequestMetricKind = Field(
        description="errorRate: share of 5xx responses; latency: a quantile of the latency "
        "histogram, in milliseconds."
    )
    quantile: Annotated[float, AfterValidator(_check_quantile)] | None = Field(
        default=None, description="For latency: the quantile in (0, 1), e.g. 0.99 for p99."
    )

    @model_validator(mode="after")
    def _quantile_for_latency(self) -> Self:
        if self.kind == "latency" and self.quantile is None:
            raise LocatedError(("quantile",), "a latency metric needs a quantile, e.g. 0.99")
        if self.kind == "errorRate" and self.quantile is not None:
            raise LocatedError(("quantile",), "quantile applies only to kind latency")
        return self


class IstioMetric(RequestMetric):
    """Istio's standard mesh metrics (`reporter="destination"`), selected by
    destination_workload_namespace, destination_service_name and destination_version."""

    provider: Literal["istio"] = Field(description="istio: the mesh's request metrics.")


class CelloLabels(Model):
    """Names of the labels Prometheus attaches to Cello's series when it scrapes a pod."""

    namespace: LabelName = Field(default="namespace", description="Label holding the namespace.")
    version: LabelName = Field(
        default="version", description="Label holding the pod's version (the subset's label)."
    )
    service: LabelName | None = Field(
        default=None,
        description="Label holding the service/app name (e.g. app); unset: not filtered.",
    )


class CelloMetric(RequestMetric):
    """Cello's application metrics (`cello_http_requests_total`, the duration histogram)."""

    provider: Literal["cello"] = Field(description="cello: the application's own metrics.")
    labels: CelloLabels = Field(
        default_factory=CelloLabels, description="Label names that tell the pods apart."
    )


Template = Annotated[str, Field(min_length=1), AfterValidator(check_template)]


class PromqlMetric(MetricBase):
    """A user PromQL query, templated with {{ namespace }}, {{ service }}, {{ version }},
    {{ canary }}, {{ stable }} and {{ window }}; rendered once for each subset."""

    provider: Literal["promql"] = Field(description="promql: a query of your own.")
    query: Template = Field(description="PromQL yielding one number for the subset.")
    requests_query: Template = Field(
        description="PromQL yielding how many requests `query` rests on (checked against "
        "minRequests), e.g. sum(increase(...[{{ window }}]))."
    )


AnyMetric = IstioMetric | CelloMetric | PromqlMetric
# In YAML the `provider` key picks the model; an unknown provider is a validation error.
MetricSpec = Annotated[AnyMetric, Field(discriminator="provider")]
PROVIDERS = ("istio", "cello", "promql")


class GuardLimit(Limits):
    """Guard ceilings for one of the policy's metrics (by name)."""

    metric: str = Field(description="Name of a metric in spec.metrics.")


class Guard(Model):
    """Severe-breach limits checked every `interval` between steps.

    A guard failure rolls back at once, without waiting for the step's analysis or the
    failure limit. A guard measurement that is inconclusive does nothing: the step
    analysis still decides. Its limits should be looser than the metrics' own.
    """

    interval: Duration = Field(default=timedelta(seconds=5), description="How often to check.")
    window: Duration = Field(
        default=timedelta(seconds=30), description="Window of the guard's queries."
    )
    min_requests: Annotated[int, Field(ge=0)] = Field(
        default=20, description="A guard measurement on fewer requests is inconclusive."
    )
    metrics: Annotated[list[GuardLimit], Field(min_length=1)] = Field(
        description="The guarded metrics and their ceilings."
    )


class Inconclusive(Model):
    """What repeated inconclusive checks do (no data, too little traffic, query errors)."""

    limit: Annotated[int, Field(ge=1)] = Field(
        default=3, description="Consecutive inconclusive checks that trigger `action`."
    )
    action: Literal["rollback", "pause"] = Field(
        default="pause",
        description="pause: hold the current weight and wait for a person; rollback: "
        "send all traffic back to stable.",
    )


NotificationKind = Literal[
    "started",
    "stepAdvanced",
    "checkFailed",
    "inconclusive",
    "paused",
    "waitingForApproval",
    "promoted",
    "rolledBack",
    "failed",
]


def _no_plain_secret(value: object) -> object:
    """A URL or key written into the policy would end up in Git, CRDs and `kubectl get`."""
    if isinstance(value, str):
        raise ValueError(
            "never write a URL or key here: give {env: VARIABLE} or "
            "{secretKeyRef: {name: SECRET, key: KEY}}"
        )
    return value


class SecretKeyRef(Model):
    """One key of a Kubernetes Secret in the rollout's namespace."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253)]
    key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)]


class SecretSource(Model):
    """Where a webhook URL or signing key is read from at start: never the policy itself."""

    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None = Field(
        default=None, description="Name of an environment variable holding the value."
    )
    secret_key_ref: SecretKeyRef | None = Field(
        default=None, description="A key of a Secret in the rollout's namespace."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.env is None) == (self.secret_key_ref is None):
            raise ValueError("give exactly one of env, secretKeyRef")
        return self


SecretField = Annotated[SecretSource, BeforeValidator(_no_plain_secret)]


class NotifyRetry(Model):
    """How a failed delivery is retried: exponential backoff with jitter, capped."""

    attempts: Annotated[int, Field(ge=1, le=10)] = Field(
        default=4, description="Attempts in all, the first included."
    )
    backoff: Duration = Field(
        default=timedelta(seconds=1), description="Wait before the first retry; doubles."
    )
    max_backoff: Duration = Field(
        default=timedelta(seconds=30), description="Ceiling on the wait between attempts."
    )


class NotificationSink(Model):
    """One receiver of notifications and the events it is sent."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]
    type: Literal["slack", "webhook", "kubernetesEvents"] = Field(
        description="slack: incoming webhook; webhook: CloudEvents JSON, HMAC-signed; "
        "kubernetesEvents: Events on the CanaryRollout (or the VirtualService)."
    )
    url: SecretField | None = Field(default=None, description="slack, webhook: where to POST.")
    signing_key: SecretField | None = Field(
        default=None, description="webhook: HMAC-SHA256 key of the X-Rollout-Signature header."
    )
    events: list[NotificationKind] | None = Field(
        default=None, description="The events sent to this sink (default: all)."
    )
    timeout: Duration = Field(default=timedelta(seconds=5), description="Per attempt.")
    retry: NotifyRetry = Field(default_factory=NotifyRetry)

    @model_validator(mode="after")
    def _what_the_type_needs(self) -> Self:
        needs_url = self.type != "kubernetesEvents"
        if needs_url and self.url is None:
            raise LocatedError(("url",), f"a {self.type} sink needs a url")
        if not needs_url and self.url is not None:
            raise LocatedError(("url",), "a kubernetesEvents sink takes no url")
        if (self.type == "webhook") != (self.signing_key is not None):
            raise LocatedError(("signingKey",), "a webhook sink, and only one, needs signingKey")
        return self


class Notifications(Model):
    """Who is told what: the `notifications` of a policy, or a per-rollout file (`--notify`)
    whose sinks are added to the policy's (a sink of the same name replaces the policy's)."""

    sinks: list[NotificationSink] = Field(default_factory=list)

    @field_validator("sinks")
    @classmethod
    def _unique_names(cls, sinks: list[NotificationSink]) -> list[NotificationSink]:
        seen: set[str] = set()
        for i, sink in enumerate(sinks):
            if sink.name in seen:
                raise LocatedError((i, "name"), f"duplicate sink {sink.name!r}")
            seen.add(sink.name)
        return sinks


class Gate(Model):
    """How a gate is cleared. Without `url`, a person clears it (`rollout approve`); with
    `url`, an HTTP GET of that URL answering 2xx clears it, asked at every guard interval.
    While it waits, the rollout holds its weight and keeps analysing: a failure still
    rolls back."""

    url: SecretField | None = Field(
        default=None,
        description="Where to read the URL from (env or secretKeyRef): it may carry a token.",
    )


class Gates(Model):
    """Approvals a rollout waits for after an analysis passed."""

    confirm_step: Gate | None = Field(
        default=None, description="Every step after the first waits for an approval."
    )
    confirm_promotion: Gate | None = Field(
        default=None, description="Going to 100 % (promotion) waits for an approval."
    )


class PolicySpec(Model):
    """The rollout policy proper. See policies/default.yaml for every field annotated."""

    steps: list[Weight] | None = Field(
        default=None,
        description="Explicit canary weights, strictly increasing, each 1-100, ending at 100.",
    )
    step_weight: Weight | None = Field(
        default=None, description="Step size: weights stepWeight, 2*stepWeight, ... maxWeight."
    )
    max_weight: Weight | None = Field(
        default=None, description="Last generated weight before 100 (with stepWeight)."
    )
    interval: Duration = Field(default=timedelta(minutes=1), description="Time at each step.")
    window: Duration = Field(
        default=timedelta(minutes=1), description="Analysis window of every query."
    )
    min_requests: Annotated[int, Field(ge=0)] = Field(
        default=50, description="A measurement resting on fewer requests is inconclusive."
    )
    failure_limit: Annotated[int, Field(ge=1)] = Field(
        default=1, description="Failed checks (counted over the whole run) that roll back."
    )
    inconclusive: Inconclusive = Field(
        default_factory=Inconclusive,
        description="What consecutive inconclusive checks do (default: 3 in a row pause).",
    )
    guard: Guard | None = Field(default=None, description="Severe-breach limits between steps.")
    metrics: Annotated[list[MetricSpec], Field(min_length=1)] = Field(
        description="What is measured at each step, for canary and stable."
    )
    notifications: Notifications | None = Field(
        default=None, description="Slack, webhooks and Kubernetes Events told of each change."
    )
    gates: Gates | None = Field(
        default=None, description="Approvals to wait for: confirmStep, confirmPromotion."
    )

    @field_validator("steps")
    @classmethod
    def _steps_increase_to_100(cls, steps: list[int] | None) -> list[int] | None:
        if steps is None:
            return None
        if not steps:
            raise ValueError("steps is empty: give at least [100]")
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                raise LocatedError(
                    (i,), f"weight {steps[i]} is not greater than the previous {steps[i - 1]}"
                )
        if steps[-1] != 100:
            raise LocatedError((len(steps) - 1,), f"last step is {steps[-1]}, must be 100")
        return steps

    @model_validator(mode="after")
    def _one_way_to_give_steps(self) -> Self:
        if self.steps is not None and (self.step_weight or self.max_weight):
            raise LocatedError(("stepWeight",), "give either steps or stepWeight/maxWeight")
        if self.max_weight is not None and self.step_weight is None:
            raise LocatedError(("maxWeight",), "maxWeight needs stepWeight")
        if self.step_weight and self.max_weight and self.max_weight < self.step_weight:
            raise LocatedError(("maxWeight",), "maxWeight is below stepWeight")
        return self

    @model_validator(mode="after")
    def _metric_names(self) -> Self:
        seen: set[str] = set()
        for i, metric in enumerate(self.metrics):
            if metric.name in seen:
                raise LocatedError(("metrics", i, "name"), f"duplicate metric {metric.name!r}")
            seen.add(metric.name)
        if self.guard:
            for i, limit in enumerate(self.guard.metrics):
                if limit.metric not in seen:
                    raise LocatedError(
                        ("guard", "metrics", i, "metric"), f"no metric named {limit.metric!r}"
                    )
        return self

    @property
    def weights(self) -> list[int]:
        """The canary weight of each step, the last always 100."""
        if self.steps is not None:
            return list(self.steps)
        step = self.step_weight or 10
        top = self.max_weight or 100
        generated = list(range(step, top + 1, step))
        return generated if generated and generated[-1] == 100 else [*generated, 100]

    def metric(self, name: str) -> AnyMetric:
        """The metric called `name` (guard limits refer to metrics by name)."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)


class Metadata(Model):
    """Object metadata; only the name is used."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)]


class RolloutPolicy(Model):
    """A policy document as written in YAML."""

    api_version: Literal["rollout.cello.dev/v1alpha1"]
    kind: Literal["RolloutPolicy"]
    metadata: Metadata
    spec: PolicySpec


# ---- Loading YAML with line numbers ------------------------------------------------------


class Document:
    """One parsed YAML file: its data and the node tree that knows each value's line."""

    def __init__(self, path: str, data: Any, root: yaml.Node) -> None:
        self.path = path
        self.data = data
        self.root = root

    @property
    def kind(self) -> object:
        """The document's `kind`, for dispatching to the right model."""
        return self.data.get("kind") if isinstance(self.data, dict) else None

    def error(self, loc: tuple[str | int, ...], reason: str) -> InputError:
        """An InputError `file:line: field: reason` for the value at `loc`."""
        line, path = _locate(self.root, loc)
        field = f"{path}: " if path else ""
        return InputError(f"{self.path}:{line}: {field}{reason}")


def read_document(path: str | Path) -> Document:
    """Read and parse one YAML file; any problem is an InputError naming the file (and line)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"{name}: cannot read: {reason}") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(
            f"{name}:{_yaml_error_line(exc)}: malformed YAML: {_one_line(exc)}"
        ) from exc
    if root is None:
        raise InputError(f"{name}:1: empty document")
    return Document(name, data, root)


def _yaml_error_line(exc: yaml.YAMLError) -> int:
    """The 1-based line PyYAML blames: where the problem is, else where its context began."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return int(mark.line) + 1 if mark is not None else 1


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's messages span lines (with a source excerpt); keep context and problem."""
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = "; ".join(str(part) for part in parts if part) or str(exc)
    return " ".join(text.split())


def parse_document[M: BaseModel](doc: Document, model: type[M]) -> M:
    """Validate a document against `model`; the first error becomes one located line."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        errors = exc.errors()
        loc, reason = _describe(errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise doc.error(loc, reason + more) from None


def load_policy(path: str | Path) -> RolloutPolicy:
    """Load and validate a RolloutPolicy file; raises InputError with `file:line: field: why`."""
    return parse_document(read_document(path), RolloutPolicy)


def _describe(error: Any) -> tuple[tuple[str | int, ...], str]:
    """The location and a readable reason of one pydantic error."""
    loc: tuple[str | int, ...] = tuple(error["loc"])
    kind = error["type"]
    ctx = error.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, LocatedError):
        return loc + cause.path, str(cause)
    if isinstance(cause, Exception):
        return loc, str(cause)
    if kind == "extra_forbidden":
        return loc, "unknown field"
    if kind == "missing":
        return loc, "required field is missing"
    if kind == "union_tag_invalid":
        return (*loc, "provider"), (
            f"unknown provider {ctx.get('tag')!r} (expected {', '.join(PROVIDERS)})"
        )
    if kind == "union_tag_not_found":
        return (*loc, "provider"), f"required field is missing ({', '.join(PROVIDERS)})"
    return loc, str(error["msg"])


def _locate(root: yaml.Node, loc: tuple[str | int, ...]) -> tuple[int, str]:
    """The line of the deepest node on `loc` that exists, and `loc` as a field path.

    A key that is not in the file (a missing field) locates at its parent mapping.
    """
    node: yaml.Node | None = root
    line = root.start_mark.line + 1
    path = ""
    for part in loc:
        if isinstance(part, str) and part in PROVIDERS and _tag_of(node) == part:
            continue  # pydantic's discriminated-union step, not a key in the file
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
        node, key_line = _child(node, part)
        if key_line is not None:
            line = key_line
    return line, path


def _child(node: yaml.Node | None, part: str | int) -> tuple[yaml.Node | None, int | None]:
    """The child node at `part` and the line to report for it (None if it is absent)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                return value, key.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        child = node.value[part]
        return child, child.start_mark.line + 1
    return None, None


def _tag_of(node: yaml.Node | None) -> str | None:
    """The `provider` value of a mapping node, if any."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "provider" and isinstance(value, yaml.ScalarNode):
                return str(value.value)
    return None
