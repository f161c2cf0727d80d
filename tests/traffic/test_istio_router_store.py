"""The router's decisions that need no API server: schema refusal and bounded retries.

A recording store stands in for the cluster through the router's own IstioStore interface
(no kubernetes client is patched): it serves fixed objects and records every patch sent.
"""

import copy
import dataclasses

import pytest
from istio_shapes import NAMESPACE, SERVICE, Obj, destination_rule, split_route, virtual_service

from rollout.errors import InputError
from rollout.target import Target
from rollout.traffic.istio import (
    MAX_ATTEMPTS,
    ConflictError,
    IstioRouter,
    Kind,
)

TARGET = Target(namespace=NAMESPACE, virtual_service=SERVICE, stable="v1", canary="v2")


class RecordingStore:
    """Serves one VirtualService and its DestinationRule; every patch loses a race (409)."""

    def __init__(self, vs: Obj) -> None:
        vs = copy.deepcopy(vs)
        vs["metadata"]["resourceVersion"] = "7"
        self.objects = {"VirtualService": vs, "DestinationRule": destination_rule("v1", "v2")}
        self.patches: list[Obj | list[Obj]] = []

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        return copy.deepcopy(self.objects[kind.name])

    def get_all(self, kind: Kind, namespace: str) -> list[Obj]:
        return [self.get(kind, namespace, "")]

    def patch(self, kind: Kind, namespace: str, name: str, patch: Obj | list[Obj]) -> Obj:
        self.patches.append(patch)
        raise ConflictError(f"{kind.name} {namespace}/{name}: changed by another writer")


def test_refuses_to_send_a_virtual_service_whose_other_parts_break_the_schema() -> None:
    broken = {"name": "other", "retries": {"attempts": "three"}, "route": split_route()["route"]}
    store = RecordingStore(virtual_service(broken, split_route(name="managed")))
    router = IstioRouter(store)
    target = dataclasses.replace(TARGET, route="managed")
    with pytest.raises(InputError) as caught:
        router.set_canary_weight(target, 30)
    assert str(caught.value).startswith(
        "VirtualService demo/cello-app: breaks Istio's schema: spec.http[0].retries.attempts"
    )
    assert store.patches == []


def test_sends_nothing_when_the_weights_are_already_right() -> None:
    store = RecordingStore(virtual_service(split_route(60, 40)))
    change = IstioRouter(store).set_canary_weight(TARGET, 40)
    assert (change.before, change.after, change.written) == ((60, 40), (60, 40), False)
    assert change.resource_version == "7"
    assert store.patches == []


def test_gives_up_after_bounded_conflicts_with_exit_code_3() -> None:
    store = RecordingStore(virtual_service(split_route()))
    with pytest.raises(ConflictError, match=f"on each of {MAX_ATTEMPTS} attempts") as caught:
        IstioRouter(store).set_canary_weight(TARGET, 30)
    assert caught.value.exit_code == 3
    assert len(store.patches) == MAX_ATTEMPTS


def test_current_weights_reads_the_managed_route() -> None:
    store = RecordingStore(virtual_service(split_route(75, 25)))
    assert IstioRouter(store).current_weights(TARGET) == (75, 25)
