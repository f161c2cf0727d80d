"""The RolloutPolicy model: step generation, defaults, cross-field checks, error locations."""

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rollout.errors import InputError
from rollout.policy import PolicySpec, RolloutPolicy, load_policy

ROOT = Path(__file__).resolve().parents[2]
METRIC = {"name": "errors", "provider": "istio", "kind": "errorRate", "max": 0.1}


def spec(**fields: Any) -> PolicySpec:
    return PolicySpec.model_validate({"metrics": [METRIC], **fields})


@pytest.mark.parametrize(
    ("fields", "weights"),
    [
        ({}, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]),
        ({"steps": [5, 50, 100]}, [5, 50, 100]),
        ({"steps": [100]}, [100]),
        ({"stepWeight": 25}, [25, 50, 75, 100]),
        ({"stepWeight": 30}, [30, 60, 90, 100]),
        ({"stepWeight": 10, "maxWeight": 50}, [10, 20, 30, 40, 50, 100]),
        ({"stepWeight": 20, "maxWeight": 50}, [20, 40, 100]),
        ({"stepWeight": 100}, [100]),
    ],
)
def test_weights(fields: dict[str, Any], weights: list[int]) -> None:
    assert spec(**fields).weights == weights


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"steps": []}, "empty"),
        ({"steps": [0, 100]}, "outside 1-100"),
        ({"steps": [20, 20, 100]}, "not greater"),
        ({"steps": [10, 90]}, "must be 100"),
        ({"steps": [10, 100], "stepWeight": 10}, "either steps or stepWeight"),
        ({"maxWeight": 50}, "needs stepWeight"),
        ({"stepWeight": 50, "maxWeight": 20}, "below stepWeight"),
        ({"stepWeight": 101}, "outside 1-100"),
        ({"steps": [10, "20", 100]}, "valid integer"),
        ({"failureLimit": 0}, "greater than or equal to 1"),
        ({"inconclusive": {"action": "ignore"}}, "'rollback' or 'pause'"),
    ],
)
def test_bad_steps_and_limits(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        spec(**fields)


def test_defaults_are_documented_values() -> None:
    s = spec()
    assert s.interval == timedelta(minutes=1)
    assert s.window == timedelta(minutes=1)
    assert s.min_requests == 50
    assert s.failure_limit == 1
    assert (s.inconclusive.limit, s.inconclusive.action) == (3, "pause")
    assert s.guard is None


@pytest.mark.parametrize(
    ("metric", "reason"),
    [
        ({"kind": "latency"}, "needs a quantile"),
        ({"kind": "errorRate", "quantile": 0.5}, "only to kind latency"),
        ({"kind": "latency", "quantile": 0}, r"outside \(0, 1\)"),
        ({"kind": "latency", "quantile": 1}, r"outside \(0, 1\)"),
        ({"max": None}, "at least one of max"),
        ({"max": -1}, "greater than or equal to 0"),
        ({"max": float("nan")}, "finite"),
        ({"maxRatio": 0}, "greater than 0"),
        ({"kind": "p99"}, "errorRate"),
        ({"name": "Errors!"}, "pattern"),
    ],
)
def test_bad_metrics(metric: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        spec(metrics=[{**METRIC, **metric}])


def test_duplicate_metric_names() -> None:
    with pytest.raises(ValueError, match="duplicate metric 'errors'"):
        spec(metrics=[METRIC, METRIC])


def test_guard_refers_to_metrics_by_name() -> None:
    guard = {"metrics": [{"metric": "errors", "max": 0.5}]}
    s = spec(guard=guard)
    assert s.guard is not None
    assert s.guard.interval == timedelta(seconds=5)
    assert s.metric(s.guard.metrics[0].metric).name == "errors"
    with pytest.raises(ValueError, match="no metric named 'latency'"):
        spec(guard={"metrics": [{"metric": "latency", "max": 1}]})


def test_durations_serialise_back_to_promql_text() -> None:
    dumped = spec(interval="1m30s", window="500ms").model_dump(mode="json", by_alias=True)
    assert (dumped["interval"], dumped["window"]) == ("1m30s", "500ms")


def test_json_schema_is_available_for_the_crd() -> None:
    schema = RolloutPolicy.model_json_schema(by_alias=True)
    assert "spec" in schema["properties"]


@pytest.mark.parametrize("name", ["default", "strict", "demo"])
def test_shipped_policies_load(name: str) -> None:
    policy = load_policy(ROOT / "policies" / f"{name}.yaml")
    assert policy.metadata.name == name
    assert policy.spec.weights[-1] == 100
    assert policy.spec.window <= policy.spec.interval or name == "demo"
    providers = {(m.provider, getattr(m, "kind", None)) for m in policy.spec.metrics}
    assert providers >= {
        ("istio", "errorRate"),
        ("istio", "latency"),
        ("cello", "errorRate"),
        ("cello", "latency"),
    }


def test_strict_is_stricter_than_default() -> None:
    default = load_policy(ROOT / "policies" / "default.yaml").spec
    strict = load_policy(ROOT / "policies" / "strict.yaml").spec
    assert strict.min_requests > default.min_requests
    assert len(strict.weights) > len(default.weights)
    for metric in strict.metrics:
        assert metric.max is not None
        assert metric.max < (default.metric(metric.name).max or 0)


def test_error_message_is_file_line_field_reason(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "apiVersion: rollout.cello.dev/v1alpha1\nkind: RolloutPolicy\nmetadata:\n  name: b\n"
        "spec:\n  metrics:\n    - name: a\n      provider: cello\n      kind: latency\n"
        "      quantile: 0.9\n      max: 1\n      labels:\n        version: 'pod version'\n"
    )
    with pytest.raises(InputError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}:13: spec.metrics[0].labels.version: ")


def test_several_errors_report_the_first_and_count_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("apiVersion: x\nkind: RolloutPolicy\nmetadata: {name: b}\nspec: {a: 1}\n")
    with pytest.raises(InputError, match=r":1: apiVersion: .*\(and \d+ more\)"):
        load_policy(path)


def test_empty_and_non_mapping_documents(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    with pytest.raises(InputError, match=r"empty.yaml:1: empty document"):
        load_policy(empty)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(InputError, match=r"list.yaml:1: "):
        load_policy(listing)


def test_unsafe_yaml_tags_are_malformed(tmp_path: Path) -> None:
    path = tmp_path / "tag.yaml"
    path.write_text("kind: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(InputError, match=r"tag\.yaml:1: malformed YAML"):
        load_policy(path)
