"""`rollout.traffic.schema`: Istio's CRD schema as the API server applies it."""

import copy

import pytest
from kubeapi_helpers import guide_objects

from rollout.errors import ExitCode
from rollout.traffic.schema import SchemaError, check_istio, validate_istio


def test_the_cello_guide_objects_are_valid_in_every_served_version() -> None:
    for obj in guide_objects():
        for version in ("v1", "v1beta1", "v1alpha3"):
            assert validate_istio({**obj, "apiVersion": f"networking.istio.io/{version}"}) == []


def test_a_string_weight_is_an_error_naming_the_field() -> None:
    vs, _ = guide_objects()
    vs["spec"]["http"][0]["route"][0]["weight"] = "50"
    assert validate_istio(vs) == [
        'spec.http[0].route[0].weight: Invalid value: "50": must be of type integer'
    ]


def test_unknown_fields_are_errors_except_where_the_schema_keeps_them() -> None:
    vs, _ = guide_objects()
    vs["spec"]["http"][0]["route"][0]["wieght"] = 90
    vs["status"] = {"anything": {"the": "controller writes"}}  # preserve-unknown-fields
    assert validate_istio(vs) == [
        "spec.http[0].route[0].wieght: Unsupported value: unknown field 'wieght'"
    ]


def test_int_or_string_and_nullable_follow_the_kubernetes_extensions() -> None:
    vs, _ = guide_objects()
    for generation in (3, "3"):
        assert validate_istio({**vs, "status": {"observedGeneration": generation}}) == []
    assert validate_istio({**vs, "status": {"observedGeneration": 2.5}}) != []


def test_not_an_istio_type_is_an_error() -> None:
    assert validate_istio({"apiVersion": "v1", "kind": "ConfigMap"}) == [
        "apiVersion/kind: v1/ConfigMap is not an Istio networking type"
    ]


def test_check_istio_raises_an_input_error_naming_the_object() -> None:
    vs, _ = guide_objects()
    check_istio(vs)
    broken = copy.deepcopy(vs)
    broken["metadata"]["namespace"] = "demo"
    broken["spec"]["hosts"] = "cello-app"
    with pytest.raises(SchemaError) as caught:
        check_istio(broken)
    assert caught.value.exit_code == ExitCode.INVALID_INPUT
    assert str(caught.value).startswith("VirtualService demo/cello-app: breaks Istio's schema: ")
    assert caught.value.errors == ['spec.hosts: Invalid value: "cello-app": must be of type array']
