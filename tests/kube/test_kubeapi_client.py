"""The official `kubernetes` client against the stand-in: CRUD, conflicts, status, watch.

Watch tests start from a resourceVersion taken before the writes, so the events come from
the server's log whatever the thread timing: they cannot be flaky by racing the writes.
"""

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kubeapi_helpers import ISTIO, Obj, guide_objects, history, vs_path
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from rollout import kube
from rollout.sandbox.kubeapi import KubeApiServer, kubeconfig
from rollout.traffic.schema import validate_istio

pytestmark = pytest.mark.kube

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def create_vs(custom: client.CustomObjectsApi, namespace: str, version: str = "v1") -> Obj:
    vs, _ = guide_objects()
    vs["apiVersion"] = f"{ISTIO}/{version}"
    created: Obj = custom.create_namespaced_custom_object(
        ISTIO, version, namespace, "virtualservices", vs
    )
    return created


def api_error(call: Callable[[], Any]) -> tuple[int, Obj]:
    """The HTTP status and Status body of a call that must fail."""
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)


def test_create_get_list_replace_patch_delete(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    created = create_vs(custom, namespace)
    meta = created["metadata"]
    assert (meta["namespace"], meta["generation"]) == (namespace, 1)
    assert meta["uid"] and meta["creationTimestamp"] and meta["resourceVersion"]
    args = (ISTIO, "v1", namespace, "virtualservices")
    assert custom.get_namespaced_custom_object(*args, "cello-app") == created
    # Every version the CRD serves reaches the same object.
    beta_args = (ISTIO, "v1beta1", namespace, "virtualservices", "cello-app")
    beta = custom.get_namespaced_custom_object(*beta_args)
    assert beta["apiVersion"] == f"{ISTIO}/v1beta1" and beta["spec"] == created["spec"]

    listed = custom.list_namespaced_custom_object(*args)
    assert [o["metadata"]["name"] for o in listed["items"]] == ["cello-app"]
    everywhere = custom.list_cluster_custom_object(ISTIO, "v1", "virtualservices")
    assert (namespace, "cello-app") in [
        (o["metadata"]["namespace"], o["metadata"]["name"]) for o in everywhere["items"]
    ]

    created["spec"]["http"][0]["timeout"] = "10s"
    replaced = custom.replace_namespaced_custom_object(*args, "cello-app", created)
    assert replaced["spec"]["http"][0]["timeout"] == "10s"
    assert replaced["metadata"]["generation"] == 2
    assert int(replaced["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    merged = custom.patch_namespaced_custom_object(
        *args, "cello-app", {"metadata": {"labels": {"a": "b"}}}, _content_type=MERGE
    )
    assert merged["metadata"]["labels"] == {"a": "b"}
    assert merged["metadata"]["generation"] == 2  # metadata is not spec
    ops = [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 80},
           {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 20}]  # fmt: skip
    patched = custom.patch_namespaced_custom_object(
        *args, "cello-app", ops, _content_type=JSON_PATCH
    )
    assert [d["weight"] for d in patched["spec"]["http"][0]["route"]] == [80, 20]
    assert patched["metadata"]["generation"] == 3
    assert validate_istio(patched) == []

    custom.delete_namespaced_custom_object(*args, "cello-app")
    status, body = api_error(lambda: custom.get_namespaced_custom_object(*args, "cello-app"))
    assert (status, body["reason"], body["kind"]) == (404, "NotFound", "Status")
    assert body["message"] == 'virtualservices.networking.istio.io "cello-app" not found'


def test_a_stale_resource_version_gets_409_conflict(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    args = (ISTIO, "v1", namespace, "virtualservices", "cello-app")
    stale = create_vs(custom, namespace)
    custom.patch_namespaced_custom_object(*args, {"spec": {"gateways": ["mesh"]}})
    stale["spec"]["http"][0]["timeout"] = "5s"
    status, body = api_error(lambda: custom.replace_namespaced_custom_object(*args, stale))
    assert (status, body["reason"], body["code"]) == (409, "Conflict", 409)
    assert "the object has been modified" in body["message"]

    rv_patch = [
        {
            "op": "replace",
            "path": "/metadata/resourceVersion",
            "value": stale["metadata"]["resourceVersion"],
        },
        {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 50},
    ]
    status, _ = api_error(
        lambda: custom.patch_namespaced_custom_object(*args, rv_patch, _content_type=JSON_PATCH)
    )
    assert status == 409
    assert "timeout" not in custom.get_namespaced_custom_object(*args)["spec"]["http"][0]


def test_create_twice_is_409_already_exists_and_missing_namespace_404(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    create_vs(custom, namespace)
    status, body = api_error(lambda: create_vs(custom, namespace))
    assert (status, body["reason"]) == (409, "AlreadyExists")
    status, body = api_error(lambda: create_vs(custom, "no-such-namespace"))
    assert (status, body["message"]) == (404, 'namespaces "no-such-namespace" not found')


def test_a_string_weight_is_422_naming_the_field_and_nothing_changes(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    vs, dr = guide_objects()
    vs["spec"]["http"][0]["route"][1]["weight"] = "50"
    status, body = api_error(
        lambda: custom.create_namespaced_custom_object(
            ISTIO, "v1beta1", namespace, "virtualservices", vs
        )
    )
    assert (status, body["reason"]) == (422, "Invalid")
    fields = [cause["field"] for cause in body["details"]["causes"]]
    assert fields == ["spec.http[0].route[1].weight"]

    create_vs(custom, namespace)
    args = (ISTIO, "v1", namespace, "virtualservices", "cello-app")
    before = custom.get_namespaced_custom_object(*args)
    bad = {"spec": {"http": [{"route": [{"destination": {"host": "x"}, "weight": "50"}]}]}}
    status, _ = api_error(lambda: custom.patch_namespaced_custom_object(*args, bad))
    assert status == 422
    assert custom.get_namespaced_custom_object(*args) == before
    # The guide's DestinationRule (trafficPolicy, subsets) is valid.
    custom.create_namespaced_custom_object(ISTIO, "v1beta1", namespace, "destinationrules", dr)


def test_status_subresource_separates_status_from_the_rest(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    args = ("rollout.cello.dev", "v1alpha1", namespace, "canaryrollouts", "web")
    spec = {
        "target": {"virtualService": "web", "stable": "v1", "canary": "v2"},
        "policyRef": {"name": "default"},
    }
    body = {
        "apiVersion": "rollout.cello.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": "web"},
        "spec": spec,
        "status": {"phase": "Succeeded"},
    }
    created = custom.create_namespaced_custom_object(*args[:4], body)
    assert "status" not in created

    with_status = custom.patch_namespaced_custom_object_status(
        *args, {"status": {"phase": "Progressing"}, "spec": {"paused": True}}
    )
    assert with_status["status"] == {"phase": "Progressing"}
    assert with_status["spec"] == spec
    assert with_status["metadata"]["generation"] == 1

    main = custom.patch_namespaced_custom_object(
        *args, {"spec": {"paused": True}, "status": {"phase": "Failed"}}
    )
    assert main["status"] == {"phase": "Progressing"}
    assert main["spec"] == {**spec, "paused": True}
    assert main["metadata"]["generation"] == 2
    assert custom.get_namespaced_custom_object_status(*args)["status"] == {"phase": "Progressing"}


def test_watch_sees_added_modified_deleted(custom: client.CustomObjectsApi, namespace: str) -> None:
    args = (ISTIO, "v1", namespace, "virtualservices")
    start = custom.list_namespaced_custom_object(*args)["metadata"]["resourceVersion"]

    def writes() -> None:
        create_vs(custom, namespace)
        custom.patch_namespaced_custom_object(*args, "cello-app", {"spec": {"gateways": ["mesh"]}})
        custom.delete_namespaced_custom_object(*args, "cello-app")

    writer = threading.Thread(target=writes)
    writer.start()
    seen = []
    stream = watch.Watch()
    for event in stream.stream(
        custom.list_namespaced_custom_object, *args, resource_version=start, timeout_seconds=10
    ):
        seen.append((event["type"], event["object"]["metadata"]["resourceVersion"]))
        if event["type"] == "DELETED":
            stream.stop()
    writer.join()
    assert [kind for kind, _ in seen] == ["ADDED", "MODIFIED", "DELETED"]
    versions = [int(rv) for _, rv in seen]
    assert versions == sorted(versions) and len(set(versions)) == 3


def test_watch_without_resource_version_lists_first_and_ends_at_timeout(
    custom: client.CustomObjectsApi, namespace: str
) -> None:
    create_vs(custom, namespace)
    events = list(
        watch.Watch().stream(
            custom.list_namespaced_custom_object, ISTIO, "v1", namespace, "virtualservices",
            timeout_seconds=1,
        )
    )  # fmt: skip
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "cello-app")
    ]


def test_watch_from_a_compacted_resource_version_is_410(tmp_path: Any) -> None:
    server = KubeApiServer(event_log_size=3).start()
    try:
        path = tmp_path / "kubeconfig"
        path.write_text(kubeconfig(server.url))
        core = client.CoreV1Api(kube.api_client(str(path)))
        server.create_namespaces(["a", "b", "c", "d", "e"])
        with pytest.raises(ApiException) as caught:
            list(watch.Watch().stream(core.list_namespace, resource_version="1", timeout_seconds=1))
        assert caught.value.status == 410
    finally:
        server.stop()


def test_builtin_types_leases_configmaps_events(
    api_client: client.ApiClient, namespace: str
) -> None:
    leases = client.CoordinationV1Api(api_client)
    lease = client.V1Lease(
        metadata=client.V1ObjectMeta(name="rollout-controller"),
        spec=client.V1LeaseSpec(holder_identity="pod-a", lease_duration_seconds=15),
    )
    created = leases.create_namespaced_lease(namespace, lease)
    created.spec.holder_identity = "pod-b"
    leases.replace_namespaced_lease("rollout-controller", namespace, created)
    created.spec.holder_identity = "pod-c"  # still the old resourceVersion
    with pytest.raises(ApiException) as caught:
        leases.replace_namespaced_lease("rollout-controller", namespace, created)
    assert caught.value.status == 409
    assert (
        leases.read_namespaced_lease("rollout-controller", namespace).spec.holder_identity
        == "pod-b"
    )

    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": "v"})
    )
    core.patch_namespaced_config_map("c", namespace, {"data": {"k": "w"}})
    assert core.read_namespaced_config_map("c", namespace).data == {"k": "w"}
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="e1"),
        involved_object=client.V1ObjectReference(kind="CanaryRollout", name="web"),
        reason="Promoted", message="100 % on v2", type="Normal",
    )  # fmt: skip
    core.create_namespaced_event(namespace, event)
    assert [e.reason for e in core.list_namespaced_event(namespace).items] == ["Promoted"]
    events = client.EventsV1Api(api_client)
    new_style = client.EventsV1Event(
        metadata=client.V1ObjectMeta(name="e2"), event_time=datetime.now(UTC),
        reason="Promoted", note="100 % on v2", type="Normal", action="Promote",
        reporting_controller="rollout.cello.dev/controller", reporting_instance="pod-a",
    )  # fmt: skip
    events.create_namespaced_event(namespace, new_style)
    assert [e.note for e in events.list_namespaced_event(namespace).items] == ["100 % on v2"]
    assert namespace in [n.metadata.name for n in core.list_namespace().items]


def test_write_history_has_each_successful_write_once(
    kube_server: KubeApiServer, custom: client.CustomObjectsApi, namespace: str
) -> None:
    args = (ISTIO, "v1", namespace, "virtualservices", "cello-app")
    create_vs(custom, namespace)
    custom.patch_namespaced_custom_object(*args, {"spec": {"gateways": ["mesh"]}})
    custom.patch_namespaced_custom_object(*args, {"spec": {"gateways": ["mesh"]}})  # no change
    with pytest.raises(ApiException):
        custom.patch_namespaced_custom_object(*args, {"spec": {"gateways": "mesh"}})  # 422
    writes = history(kube_server, vs_path(namespace))
    assert [(w["verb"], w["changed"]) for w in writes] == [
        ("create", True), ("patch", True), ("patch", False),
    ]  # fmt: skip
    assert writes[1]["object"]["spec"]["gateways"] == ["mesh"]
    assert writes[2]["resourceVersion"] == writes[1]["resourceVersion"]
    assert history(kube_server, vs_path(namespace, "other")) == []


def test_concurrent_read_modify_write_loses_no_update(
    kube_server: KubeApiServer, custom: client.CustomObjectsApi, namespace: str
) -> None:
    """Writers racing on one object: each 409 is retried, so every increment lands once."""
    args = (ISTIO, "v1", namespace, "virtualservices", "cello-app")
    create_vs(custom, namespace)
    writers, increments = 4, 5

    def increment() -> None:
        for _ in range(increments):
            while True:
                vs = custom.get_namespaced_custom_object(*args)
                labels = vs["metadata"].setdefault("labels", {})
                labels["count"] = str(int(labels.get("count", "0")) + 1)
                try:
                    custom.replace_namespaced_custom_object(*args, vs)
                    break
                except ApiException as exc:
                    assert exc.status == 409

    threads = [threading.Thread(target=increment) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = custom.get_namespaced_custom_object(*args)
    assert final["metadata"]["labels"]["count"] == str(writers * increments)
    updates = [w for w in history(kube_server, vs_path(namespace)) if w["verb"] == "update"]
    assert len(updates) == writers * increments
