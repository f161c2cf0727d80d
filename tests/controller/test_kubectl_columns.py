"""`kubectl get canaryrollouts -n demo` against the stand-in prints the CRD's printer columns
(must-show 4), and the stand-in refuses a CanaryRollout that breaks the generated schema."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout import kube
from rollout.engine import Phase, RolloutState
from rollout.resources import Run, status_of
from rollout.sandbox.kubeapi import KubeApiServer, kubeconfig

GROUP, VERSION = "rollout.cello.dev", "v1alpha1"
ROLLOUT = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "CanaryRollout",
    "metadata": {"name": "cello-app"},
    "spec": {
        "target": {"virtualService": "cello-app", "stable": "v1", "canary": "v2"},
        "policyRef": {"name": "fast"},
    },
}


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[tuple[client.CustomObjectsApi, dict[str, str]]]:
    server = KubeApiServer().start()
    server.create_namespaces(["demo"])
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig(server.url, "demo"))
    env = {**os.environ, "KUBECONFIG": str(config), "KUBECACHEDIR": str(tmp_path / "cache")}
    yield client.CustomObjectsApi(kube.api_client(str(config))), env
    server.stop()


def test_kubectl_get_shows_phase_weight_step_and_age(
    stand_in: tuple[client.CustomObjectsApi, dict[str, str]],
) -> None:
    custom, env = stand_in
    obj = custom.create_namespaced_custom_object(GROUP, VERSION, "demo", "canaryrollouts", ROLLOUT)
    state = RolloutState(phase=Phase.PROGRESSING, step=2, weight=60)
    status = status_of(state, run=Run(stable="v1", canary="v2"), generation=1, previous=None)
    obj["status"] = status.model_dump(mode="json", by_alias=True)
    custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, "demo", "canaryrollouts", "cello-app", obj
    )
    done = subprocess.run(
        ["kubectl", "get", "canaryrollouts", "-n", "demo"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "WEIGHT", "STEP", "AGE"]
    assert row.split()[:4] == ["cello-app", "Progressing", "60", "2"]


def test_the_stand_in_refuses_what_the_schema_refuses(
    stand_in: tuple[client.CustomObjectsApi, dict[str, str]],
) -> None:
    custom, _ = stand_in
    bad = {**ROLLOUT, "spec": {**ROLLOUT["spec"], "paused": "yes", "typo": 1}}
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(GROUP, VERSION, "demo", "canaryrollouts", bad)
    assert refused.value.status == 422
    assert "spec.paused" in str(refused.value.body) and "typo" in str(refused.value.body)
