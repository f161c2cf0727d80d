"""The real kubectl (1.32) against the stand-in, through a written kubeconfig.

kubectl validates `apply` through the server's OpenAPI v3 document and the server's schema
check, so the 422 tests show that path, not only our own client's.
"""

import json

import pytest
import yaml
from kubeapi_helpers import MANIFESTS, Kubectl, Obj, guide_objects

pytestmark = pytest.mark.kube

GUIDE = str(MANIFESTS / "cello-guide.yaml")


def get_vs(kubectl: Kubectl, name: str = "cello-app") -> Obj:
    result = kubectl("get", "virtualservices", name, "-o", "yaml")
    assert result.returncode == 0, result.stderr
    obj: Obj = yaml.safe_load(result.stdout)
    return obj


def weights(vs: Obj) -> list[int]:
    return [d["weight"] for d in vs["spec"]["http"][0]["route"]]


def guide_text() -> str:
    return (MANIFESTS / "cello-guide.yaml").read_text()


def test_apply_creates_the_guide_objects_then_apply_again_changes_them(kubectl: Kubectl) -> None:
    created = kubectl("apply", "-f", GUIDE)
    assert created.returncode == 0, created.stderr
    assert "virtualservice.networking.istio.io/cello-app created" in created.stdout
    assert "destinationrule.networking.istio.io/cello-app created" in created.stdout
    first = get_vs(kubectl)
    assert weights(first) == [90, 10]
    assert first["metadata"]["generation"] == 1

    changed = guide_text().replace("weight: 90", "weight: 60").replace("weight: 10", "weight: 40")
    again = kubectl("apply", "-f", "-", stdin=changed)
    assert again.returncode == 0, again.stderr
    assert "virtualservice.networking.istio.io/cello-app configured" in again.stdout
    assert "destinationrule.networking.istio.io/cello-app unchanged" in again.stdout
    second = get_vs(kubectl)
    assert weights(second) == [60, 40]
    assert second["metadata"]["generation"] == 2
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


def test_get_virtualservices_as_yaml_lists_them(kubectl: Kubectl, namespace: str) -> None:
    assert kubectl("apply", "-f", GUIDE).returncode == 0
    result = kubectl("get", "virtualservices", "-o", "yaml")
    assert result.returncode == 0, result.stderr
    listing = yaml.safe_load(result.stdout)
    (vs,) = listing["items"]
    assert (vs["kind"], vs["metadata"]["name"], vs["metadata"]["namespace"]) == (
        "VirtualService", "cello-app", namespace,
    )  # fmt: skip
    assert vs["spec"] == guide_objects()[0]["spec"]
    header, row = kubectl("get", "vs").stdout.splitlines()
    assert header.split() == ["NAME", "GATEWAYS", "HOSTS", "AGE"]  # the CRD's printer columns
    assert row.split()[:2] == ["cello-app", '["cello-app"]']


def test_patch_merge_and_json_then_delete(kubectl: Kubectl) -> None:
    assert kubectl("apply", "-f", GUIDE).returncode == 0
    labels = '{"metadata":{"labels":{"team":"payments"}}}'
    merge = kubectl("patch", "vs", "cello-app", "--type", "merge", "-p", labels)
    assert merge.returncode == 0, merge.stderr
    ops = [
        {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 70},
        {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 30},
    ]
    patched = kubectl("patch", "vs", "cello-app", "--type", "json", "-p", json.dumps(ops))
    assert patched.returncode == 0, patched.stderr
    vs = get_vs(kubectl)
    assert weights(vs) == [70, 30]
    assert vs["metadata"]["labels"] == {"team": "payments"}

    deleted = kubectl("delete", "vs", "cello-app")
    assert deleted.returncode == 0, deleted.stderr
    gone = kubectl("get", "vs", "cello-app")
    assert gone.returncode == 1
    assert 'virtualservices.networking.istio.io "cello-app" not found' in gone.stderr


def test_strategic_merge_patch_of_a_custom_resource_is_refused(kubectl: Kubectl) -> None:
    assert kubectl("apply", "-f", GUIDE).returncode == 0
    result = kubectl("patch", "vs", "cello-app", "-p", '{"metadata":{"labels":{"a":"b"}}}')
    assert result.returncode == 1
    assert "application/strategic-merge-patch+json is not supported" in result.stderr


def test_a_weight_given_as_a_string_is_refused_with_422_naming_the_field(kubectl: Kubectl) -> None:
    bad = guide_text().replace("weight: 10", 'weight: "50"')
    result = kubectl("apply", "-f", "-", stdin=bad)
    assert result.returncode == 1
    assert 'The VirtualService "cello-app" is invalid' in result.stderr
    assert 'spec.http[0].route[1].weight: Invalid value: "50": must be of type integer' in (
        result.stderr
    )
    assert kubectl("get", "vs", "cello-app").returncode == 1  # nothing was created


def test_server_side_dry_run_is_refused_and_writes_nothing(kubectl: Kubectl) -> None:
    result = kubectl("apply", "-f", GUIDE, "--dry-run=server")
    assert result.returncode == 1
    assert "dryRun is not supported by the sandbox API" in result.stderr
    assert kubectl("get", "vs", "cello-app").returncode == 1
