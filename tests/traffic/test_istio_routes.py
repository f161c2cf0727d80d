"""Pure logic of the Istio router: finding the managed route, reading and setting the split."""

import copy
from collections.abc import Callable

import pytest
from istio_shapes import (
    FQDN,
    NAMESPACE,
    SERVICE,
    dest,
    destination_rule,
    split_route,
    virtual_service,
)

from rollout.errors import InputError
from rollout.target import Target
from rollout.traffic.istio import (
    ManagedRoute,
    Split,
    check_destination_rule,
    find_route,
    pick_destination_rule,
    read_split,
    service_key,
    weight_patch,
    with_split,
)

TARGET = Target(namespace=NAMESPACE, virtual_service=SERVICE, stable="v1", canary="v2")


def named(name: str) -> Target:
    return Target(
        namespace=NAMESPACE, virtual_service=SERVICE, stable="v1", canary="v2", route=name
    )


def error_of(func: Callable[..., object], *args: object) -> str:
    """The one-line message of the InputError that `func(*args)` raises."""
    with pytest.raises(InputError) as caught:
        func(*args)
    return str(caught.value)


class TestFindRoute:
    def test_the_only_route_holding_both_subsets(self) -> None:
        vs = virtual_service(
            {"match": [{"headers": {"x-canary": {"exact": "1"}}}], "route": [dest("v2")]},
            split_route(),
        )
        route = find_route(vs, TARGET)
        assert (route.index, route.label, route.stable, route.canary) == (1, "route http[1]", 0, 1)

    def test_by_name_among_routes_that_all_hold_both_subsets(self) -> None:
        vs = virtual_service(split_route(name="api"), split_route(name="web"))
        assert find_route(vs, named("web")).index == 1
        assert find_route(vs, named("web")).label == 'route "web"'

    def test_destinations_in_either_order(self) -> None:
        vs = virtual_service({"route": [dest("v2", 10), dest("v1", 90)]})
        route = find_route(vs, TARGET)
        assert (route.stable, route.canary) == (1, 0)

    def test_two_candidate_routes_without_route_name_are_ambiguous(self) -> None:
        vs = virtual_service(split_route(name="api"), split_route())
        message = error_of(find_route, vs, TARGET)
        assert message == (
            'VirtualService demo/cello-app: 2 routes match (route "api", route http[1]); '
            "name one with --route"
        )

    def test_third_destination_is_refused(self) -> None:
        route = {"name": "primary", "route": [dest("v1", 80), dest("v2", 10), dest("v3", 10)]}
        message = error_of(find_route, virtual_service(route), TARGET)
        assert message == (
            'VirtualService demo/cello-app: route "primary" has 3 destinations (v1, v2, v3); '
            "expected exactly the stable and canary subsets (v1, v2)"
        )

    def test_named_route_without_the_canary(self) -> None:
        vs = virtual_service({"name": "primary", "route": [dest("v1")]})
        message = error_of(find_route, vs, named("primary"))
        assert "has 1 destination (v1); expected exactly" in message

    def test_unknown_route_name_lists_the_routes(self) -> None:
        vs = virtual_service(split_route(name="api"), split_route())
        message = error_of(find_route, vs, named("nope"))
        assert message == (
            'VirtualService demo/cello-app: no HTTP route named "nope" '
            '(routes: route "api", route http[1])'
        )

    def test_no_route_holds_both_subsets(self) -> None:
        vs = virtual_service({"route": [dest("v1")]})
        assert "no HTTP route holding both subsets v1 and v2" in error_of(find_route, vs, TARGET)

    def test_tcp_only_virtual_service(self) -> None:
        vs = virtual_service()
        vs["spec"].pop("http")
        assert error_of(find_route, vs, TARGET) == (
            "VirtualService demo/cello-app: has no HTTP routes"
        )

    def test_subsets_of_two_services_are_refused(self) -> None:
        vs = virtual_service({"route": [dest("v1", 90), dest("v2", 10, host="other")]})
        assert "to different hosts (cello-app, other)" in error_of(find_route, vs, TARGET)

    def test_fqdn_and_short_host_of_one_service_are_one_host(self) -> None:
        vs = virtual_service({"route": [dest("v1", 90, FQDN), dest("v2", 10)]})
        assert find_route(vs, TARGET).index == 0


class TestSplit:
    ROUTE = ManagedRoute(index=1, label="route http[1]", host=SERVICE, stable=1, canary=0)
    VS = virtual_service(
        split_route(name="other"),
        {"retries": {"attempts": 3}, "route": [dest("v2", 10), dest("v1", 90)]},
    )

    def test_reads_the_managed_route(self) -> None:
        assert read_split(self.VS, self.ROUTE, TARGET) == Split(stable=90, canary=10)

    def test_missing_weight_is_zero(self) -> None:
        vs = virtual_service({"route": [dest("v1", 100), dest("v2")]})
        route = find_route(vs, TARGET)
        assert read_split(vs, route, TARGET) == (100, 0)

    def test_with_split_changes_only_the_two_weights_of_a_copy(self) -> None:
        original = copy.deepcopy(self.VS)
        updated = with_split(self.VS, self.ROUTE, Split(stable=70, canary=30))
        assert original == self.VS
        expected = copy.deepcopy(original)
        expected["spec"]["http"][1]["route"][0]["weight"] = 30
        expected["spec"]["http"][1]["route"][1]["weight"] = 70
        assert updated == expected

    def test_patch_sends_the_http_routes_on_the_version_read(self) -> None:
        updated = with_split(self.VS, self.ROUTE, Split(stable=70, canary=30))
        assert weight_patch(updated, "41") == {
            "metadata": {"resourceVersion": "41"},
            "spec": {"http": updated["spec"]["http"]},
        }

    @pytest.mark.parametrize("weight", [0, 1, 50, 100])
    def test_canary_at_sums_to_100(self, weight: int) -> None:
        assert Split.canary_at(weight) == (100 - weight, weight)

    @pytest.mark.parametrize("weight", [-1, 101, True, 10.0, "10"])
    def test_canary_at_refuses_non_percentages(self, weight: object) -> None:
        assert "must be an integer from 0 to 100" in error_of(Split.canary_at, weight)


class TestDestinationRule:
    def test_short_and_fqdn_hosts_name_one_service(self) -> None:
        assert service_key(SERVICE, NAMESPACE) == service_key(FQDN, "elsewhere")
        assert service_key(f"{SERVICE}.{NAMESPACE}.svc", NAMESPACE) == service_key(FQDN, "x")
        assert service_key(SERVICE, "other") != service_key(FQDN, "x")
        assert service_key("api.example.com", NAMESPACE) == "api.example.com"

    def test_picks_the_rule_of_the_route_host(self) -> None:
        mine = destination_rule("v1", "v2", name="mine", host=FQDN)
        other = destination_rule("v1", "v2", name="other", host="other")
        assert pick_destination_rule([other, mine], SERVICE, NAMESPACE) is mine

    def test_no_rule_for_the_host(self) -> None:
        other = destination_rule("v1", "v2", host="other")
        message = error_of(pick_destination_rule, [other], SERVICE, NAMESPACE)
        assert message == (
            "no DestinationRule in namespace demo for host 'cello-app'; "
            "name one with --destination-rule"
        )

    def test_two_rules_for_the_host(self) -> None:
        rules = [destination_rule("v1", name="a"), destination_rule("v2", name="b", host=FQDN)]
        message = error_of(pick_destination_rule, rules, SERVICE, NAMESPACE)
        assert message.startswith("DestinationRule demo/a, DestinationRule demo/b are all for")

    def test_missing_subset(self) -> None:
        message = error_of(check_destination_rule, destination_rule("v1", "v3"), SERVICE, TARGET)
        assert message == "DestinationRule demo/cello-app: has no subset v2 (subsets: v1, v3)"

    def test_rule_of_another_host(self) -> None:
        rule = destination_rule("v1", "v2", host="other")
        message = error_of(check_destination_rule, rule, SERVICE, TARGET)
        assert message == (
            "DestinationRule demo/cello-app: is for host 'other', "
            "but VirtualService demo/cello-app routes to 'cello-app'"
        )

    def test_rule_with_both_subsets_passes(self) -> None:
        check_destination_rule(destination_rule("v1", "v2", host=FQDN), SERVICE, TARGET)
