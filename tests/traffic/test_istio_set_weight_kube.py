"""`rollout set-weight` and `rollout abort` against the Kubernetes API stand-in.

Each shape test reads the whole VirtualService before and after running the real CLI and
expects exactly the two weights of the managed route to differ, after exactly one write that
left a valid Istio object; error tests expect exit 2, one line, and no write at all (the
stand-in's write history shows only the create).
"""

import copy
from dataclasses import dataclass

import pytest
from istio_shapes import FQDN, SERVICE, Obj, dest, destination_rule, split_route, virtual_service
from kube_helpers import Cluster, comparable

from rollout.traffic.schema import validate_istio

pytestmark = pytest.mark.kube

W = 40
GUIDE_RETRIES = {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,reset,connect-failure"}


@dataclass(frozen=True)
class Shape:
    """A VirtualService (and its rules), the flags to use, and where the managed weights are."""

    vs: Obj
    rules: tuple[Obj, ...] = (destination_rule("v1", "v2"),)
    flags: tuple[str, ...] = ()
    route: int = 0
    stable: int = 0
    canary: int = 1
    expected_before: tuple[int, int] = (90, 10)


SHAPES = {
    "cello-guide-split": Shape(virtual_service(split_route())),
    "cello-guide-retries-and-timeout": Shape(
        virtual_service(split_route(retries=GUIDE_RETRIES, timeout="10s"))
    ),
    "several-routes-only-the-managed-one-changes": Shape(
        virtual_service(
            {
                "name": "admin",
                "match": [{"uri": {"prefix": "/admin"}}],
                "route": [dest(None, host="cello-admin")],
            },
            split_route(name="main", match=[{"uri": {"prefix": "/"}}]),
            {"name": "fallback", "route": [dest("v1")]},
        ),
        route=1,
    ),
    "named-route-chosen-by-flag": Shape(
        virtual_service(
            split_route(name="api", match=[{"uri": {"prefix": "/api"}}]),
            split_route(70, 30, name="web"),
        ),
        flags=("--route", "web"),
        route=1,
        expected_before=(70, 30),
    ),
    "header-match-route-ahead-of-the-weighted-one": Shape(
        virtual_service(
            {
                "name": "testers",
                "match": [{"headers": {"x-canary": {"exact": "always"}}}],
                "route": [dest("v2")],
            },
            split_route(),
        ),
        route=1,
    ),
    "mirror": Shape(
        virtual_service(
            split_route(mirror={"host": SERVICE, "subset": "v2"}, mirrorPercentage={"value": 25.0})
        )
    ),
    "tls-and-tcp-beside-http": Shape(
        virtual_service(
            split_route(),
            tls=[
                {
                    "match": [{"port": 443, "sniHosts": ["cello.example.com"]}],
                    "route": [{"destination": {"host": SERVICE, "port": {"number": 8443}}}],
                }
            ],
            tcp=[
                {
                    "match": [{"port": 9000}],
                    "route": [{"destination": {"host": SERVICE, "port": {"number": 9000}}}],
                }
            ],
        )
    ),
    "fqdn-route-hosts-short-rule-host": Shape(virtual_service(split_route(host=FQDN))),
    "short-route-hosts-fqdn-rule-named-otherwise": Shape(
        virtual_service(split_route()),
        rules=(destination_rule("v1", "v2", name="cello-subsets", host=FQDN),),
    ),
    "labels-annotations-gateways-export": Shape(
        {
            **virtual_service(split_route(), gateways=["mesh", "cello-gateway"], exportTo=["."]),
            "metadata": {
                "name": SERVICE,
                "labels": {"app": SERVICE, "team": "payments"},
                "annotations": {"argocd.argoproj.io/tracking-id": "cello:networking/vs"},
            },
        }
    ),
    "fault": Shape(
        virtual_service(
            split_route(
                fault={
                    "delay": {"percentage": {"value": 10.0}, "fixedDelay": "5s"},
                    "abort": {"percentage": {"value": 1.0}, "httpStatus": 503},
                }
            )
        )
    ),
    "cors-policy": Shape(
        virtual_service(
            split_route(
                corsPolicy={
                    "allowOrigins": [{"exact": "https://cello.example.com"}],
                    "allowMethods": ["GET", "POST"],
                    "allowHeaders": ["authorization"],
                    "maxAge": "24h",
                    "allowCredentials": True,
                }
            )
        )
    ),
    "headers-on-route-and-destination": Shape(
        virtual_service(
            {
                "headers": {
                    "request": {"set": {"x-env": "prod"}},
                    "response": {"remove": ["x-internal"]},
                },
                "route": [
                    {**dest("v1", 90), "headers": {"request": {"add": {"x-subset": "v1"}}}},
                    dest("v2", 10),
                ],
            }
        )
    ),
    "canary-listed-first-no-weights-yet": Shape(
        virtual_service({"route": [dest("v2"), dest("v1")]}),
        stable=1,
        canary=0,
        expected_before=(0, 0),
    ),
    "destination-rule-chosen-by-flag": Shape(
        virtual_service(split_route()),
        rules=(
            destination_rule("v1", "v2", name="cello-canary"),
            destination_rule("v1", name="cello-legacy"),
        ),
        flags=("--destination-rule", "cello-canary"),
    ),
}


def weights_set(vs: Obj, shape: Shape, stable: int, canary: int) -> Obj:
    """`vs` with the managed route's weights set, written out independently of the router."""
    expected = copy.deepcopy(vs)
    destinations = expected["spec"]["http"][shape.route]["route"]
    destinations[shape.stable]["weight"] = stable
    destinations[shape.canary]["weight"] = canary
    return expected


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_set_weight_changes_only_the_two_weights(cluster: Cluster, shape: Shape) -> None:
    cluster.create(shape.vs, *shape.rules)
    before = cluster.get(SERVICE)

    result = cluster.rollout("set-weight", *shape.flags, str(W))

    assert result.exit_code == 0, result.stderr
    after = cluster.get(SERVICE)
    assert comparable(after) == comparable(weights_set(before, shape, 100 - W, W))
    assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    stable, canary = shape.expected_before
    assert result.stdout.endswith(f"v1 {stable} % / v2 {canary} % -> v1 60 % / v2 40 %\n")
    assert_one_valid_write_after_create(cluster)


def assert_one_valid_write_after_create(cluster: Cluster) -> None:
    """The stand-in's write history: our create, then exactly one write of ours, and every
    object it stored validates against Istio's schema.
    """
    writes = cluster.writes(SERVICE)
    assert [w["verb"] for w in writes] == ["create", "patch"]
    assert [validate_istio(w["object"]) for w in writes] == [[], []]


def test_abort_puts_all_traffic_on_stable(cluster: Cluster) -> None:
    shape = Shape(virtual_service(split_route(70, 30, retries=GUIDE_RETRIES)))
    cluster.create(shape.vs, *shape.rules)
    before = cluster.get(SERVICE)

    result = cluster.rollout("abort")

    assert result.exit_code == 0, result.stderr
    assert comparable(cluster.get(SERVICE)) == comparable(weights_set(before, shape, 100, 0))
    assert_one_valid_write_after_create(cluster)


def test_weights_already_right_are_not_written(cluster: Cluster) -> None:
    cluster.create(virtual_service(split_route(60, 40)), destination_rule("v1", "v2"))
    before = cluster.get(SERVICE)

    result = cluster.rollout("set-weight", str(W))

    assert result.exit_code == 0, result.stderr
    assert "already v1 60 % / v2 40 %; nothing written" in result.stdout
    assert cluster.get(SERVICE) == before
    assert [w["verb"] for w in cluster.writes(SERVICE)] == ["create"]


ERRORS = {
    "third-destination": (
        virtual_service(
            {"name": "primary", "route": [dest("v1", 80), dest("v2", 10), dest("v3", 10)]}
        ),
        destination_rule("v1", "v2", "v3"),
        (),
        'VirtualService {ns}/cello-app: route "primary" has 3 destinations (v1, v2, v3); '
        "expected exactly the stable and canary subsets (v1, v2)",
    ),
    "subset-missing-from-destination-rule": (
        virtual_service(split_route()),
        destination_rule("v1"),
        (),
        "DestinationRule {ns}/cello-app: has no subset v2 (subsets: v1)",
    ),
    "ambiguous-route-without-route-flag": (
        virtual_service(split_route(), split_route(50, 50)),
        destination_rule("v1", "v2"),
        (),
        "VirtualService {ns}/cello-app: 2 routes match (route http[0], route http[1]); "
        "name one with --route",
    ),
    "route-flag-names-no-route": (
        virtual_service(split_route(name="main")),
        destination_rule("v1", "v2"),
        ("--route", "primary"),
        'VirtualService {ns}/cello-app: no HTTP route named "primary" (routes: route "main")',
    ),
    "no-destination-rule-for-the-host": (
        virtual_service(split_route()),
        destination_rule("v1", "v2", host="other-app"),
        (),
        "no DestinationRule in namespace {ns} for host 'cello-app'; "
        "name one with --destination-rule",
    ),
}


@pytest.mark.parametrize(("vs", "rule", "flags", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_refused_with_exit_2_and_nothing_written(
    cluster: Cluster, vs: Obj, rule: Obj, flags: tuple[str, ...], message: str
) -> None:
    cluster.create(vs, rule)
    before = cluster.get(SERVICE), cluster.get(rule["metadata"]["name"], "DestinationRule")

    result = cluster.rollout("set-weight", *flags, str(W))

    assert result.exit_code == 2
    assert result.stderr == f"error: {message.format(ns=cluster.namespace)}\n"
    assert result.stdout == ""
    after = cluster.get(SERVICE), cluster.get(rule["metadata"]["name"], "DestinationRule")
    assert after == before
    assert [w["verb"] for w in cluster.writes(SERVICE)] == ["create"]


def test_virtual_service_that_does_not_exist(cluster: Cluster) -> None:
    cluster.create(destination_rule("v1", "v2"))

    result = cluster.rollout("set-weight", str(W), vs="missing")

    assert result.exit_code == 2
    assert result.stderr == f"error: VirtualService {cluster.namespace}/missing not found\n"
    assert cluster.writes("missing") == []
    assert [w["verb"] for w in cluster.writes(SERVICE, "DestinationRule")] == ["create"]


@pytest.mark.parametrize("weight", ["101", "-1", "ten", "10.5", "40%"])
def test_weight_that_is_not_an_integer_percentage_exits_2(cluster: Cluster, weight: str) -> None:
    cluster.create(virtual_service(split_route()), destination_rule("v1", "v2"))

    result = cluster.rollout("set-weight", "--", weight)

    assert result.exit_code == 2
    assert "Invalid value for 'W'" in result.stderr
    assert [w["verb"] for w in cluster.writes(SERVICE)] == ["create"]
