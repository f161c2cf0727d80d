"""A second writer between our read and our write: the server answers 409, we re-read and
re-apply only the weights, and both changes end up in the object.

The router's `before_write` hook is where the second writer acts; the 409 comes from the
stand-in, which refuses our patch because it carries the resourceVersion we read.
"""

import copy
from collections.abc import Mapping
from typing import Any

import pytest
from istio_shapes import SERVICE, Obj, dest, destination_rule, split_route, virtual_service
from kube_helpers import Cluster, comparable

from rollout import kube
from rollout.target import Target
from rollout.traffic.istio import WeightChange, router_for
from rollout.traffic.schema import validate_istio

pytestmark = pytest.mark.kube

TESTERS = {
    "name": "testers",
    "match": [{"headers": {"x-canary": {"exact": "always"}}}],
    "route": [dest("v2")],
}


class SecondWriter:
    """A before_write hook: on the router's first attempt only, another client JSON-patches
    the VirtualService. Records the resourceVersion the router had read at each attempt.
    """

    def __init__(self, cluster: Cluster, patch: list[Obj]) -> None:
        self.cluster = cluster
        self.patch = patch
        self.versions_read: list[str] = []

    def __call__(self, vs: Mapping[str, Any]) -> None:
        self.versions_read.append(vs["metadata"]["resourceVersion"])
        if len(self.versions_read) == 1:
            self.cluster.json_patch(SERVICE, self.patch)


def race(cluster: Cluster, writer: SecondWriter) -> WeightChange:
    """Set the canary to 30 % while `writer` changes the object between read and write."""
    target = Target(namespace=cluster.namespace, virtual_service=SERVICE, stable="v1", canary="v2")
    router = router_for(kube.api_client(str(cluster.kubeconfig)))
    return router.set_canary_weight(target, 30, before_write=writer)


def test_unrelated_change_in_between_is_kept_and_weights_reapplied(cluster: Cluster) -> None:
    cluster.create(
        virtual_service(split_route(retries={"attempts": 3})), destination_rule("v1", "v2")
    )
    expected = cluster.get(SERVICE)
    writer = SecondWriter(
        cluster, [{"op": "add", "path": "/metadata/labels", "value": {"owner": "payments"}}]
    )

    change = race(cluster, writer)

    assert change.attempts == 2
    assert len(set(writer.versions_read)) == 2
    expected["metadata"]["labels"] = {"owner": "payments"}
    expected["spec"]["http"][0]["route"][0]["weight"] = 70
    expected["spec"]["http"][0]["route"][1]["weight"] = 30
    final = cluster.get(SERVICE)
    assert comparable(final) == comparable(expected)
    assert final["metadata"]["resourceVersion"] == change.resource_version
    assert_writes_theirs_then_ours(cluster)


def test_route_inserted_ahead_in_between_is_not_hit_by_the_stale_patch(cluster: Cluster) -> None:
    """The stale write would send back the HTTP routes as first read, dropping the testers'
    route; the 409 keeps it from landing, and the retry finds the managed route at http/1.
    """
    cluster.create(virtual_service(split_route()), destination_rule("v1", "v2"))
    before = cluster.get(SERVICE)
    writer = SecondWriter(cluster, [{"op": "add", "path": "/spec/http/0", "value": TESTERS}])

    change = race(cluster, writer)

    assert change.attempts == 2
    expected = copy.deepcopy(before)
    expected["spec"]["http"] = [TESTERS, split_route(70, 30)]
    assert comparable(cluster.get(SERVICE)) == comparable(expected)
    assert_writes_theirs_then_ours(cluster)


def assert_writes_theirs_then_ours(cluster: Cluster) -> None:
    """What the stand-in stored: the create, the second writer's patch, one patch of ours
    (the one refused with 409 stored nothing); every stored object validates.
    """
    writes = cluster.writes(SERVICE)
    assert [w["verb"] for w in writes] == ["create", "patch", "patch"]
    assert all(validate_istio(w["object"]) == [] for w in writes)
