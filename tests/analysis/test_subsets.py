"""Where `rollout analyze` gets the service and version label values from (rollout/subsets.py):
the DestinationRule's subsets, unless the flags give them."""

from typing import Any

import pytest

from rollout.errors import InputError
from rollout.subsets import Subject, resolve_subject
from rollout.target import Target
from rollout.traffic.istio import DESTINATION_RULE, VIRTUAL_SERVICE, Kind

Obj = dict[str, Any]
TARGET = Target(namespace="demo", virtual_service="web", stable="stable", canary="canary")


def virtual_service(host: str) -> Obj:
    route = [
        {"destination": {"host": host, "subset": "stable"}, "weight": 90},
        {"destination": {"host": host, "subset": "canary"}, "weight": 10},
    ]
    return {"metadata": {"name": "web", "namespace": "demo"}, "spec": {"http": [{"route": route}]}}


def destination_rule(name: str, host: str, canary_labels: dict[str, str]) -> Obj:
    subsets = [
        {"name": "stable", "labels": {"version": "v1"}},
        {"name": "canary", "labels": canary_labels},
    ]
    return {
        "metadata": {"name": name, "namespace": "demo"},
        "spec": {"host": host, "subsets": subsets},
    }


class FakeStore:
    """The IstioStore reads, from dicts; records whether the cluster was read at all."""

    def __init__(self, vs: Obj, drs: list[Obj]):
        self.objects = {VIRTUAL_SERVICE.name: [vs], DESTINATION_RULE.name: drs}
        self.reads = 0

    def get(self, kind: Kind, namespace: str, name: str) -> Obj:
        self.reads += 1
        (found,) = [o for o in self.objects[kind.name] if o["metadata"]["name"] == name]
        return found

    def get_all(self, kind: Kind, namespace: str) -> list[Obj]:
        self.reads += 1
        return self.objects[kind.name]

    def patch(self, kind: Kind, namespace: str, name: str, patch: list[Obj]) -> Obj:
        raise AssertionError("analysis never writes")


def test_versions_and_service_come_from_the_destination_rule() -> None:
    host = "cello-app.demo.svc.cluster.local"
    store = FakeStore(
        virtual_service(host),
        [destination_rule("other", "other", {}), destination_rule("app", host, {"version": "v2"})],
    )

    subject = resolve_subject(TARGET, lambda: store)

    assert subject == Subject("demo", "cello-app", stable_version="v1", canary_version="v2")


def test_flags_override_and_both_versions_need_no_cluster() -> None:
    def no_cluster() -> FakeStore:
        raise AssertionError("the cluster was consulted")

    subject = resolve_subject(TARGET, no_cluster, stable_version="a", canary_version="b")

    assert subject == Subject("demo", "web", stable_version="a", canary_version="b")


def test_service_flag_overrides_the_host() -> None:
    store = FakeStore(virtual_service("web"), [destination_rule("web", "web", {"version": "v2"})])

    subject = resolve_subject(TARGET, lambda: store, service="shop", stable_version="v0")

    assert subject == Subject("demo", "shop", stable_version="v0", canary_version="v2")


def test_a_subset_without_a_version_label_is_an_input_error() -> None:
    store = FakeStore(virtual_service("web"), [destination_rule("web", "web", {"track": "x"})])

    with pytest.raises(InputError, match=r"subset canary has no labels\.version"):
        resolve_subject(TARGET, lambda: store)
