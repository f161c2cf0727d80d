"""What a rollout acts on: a VirtualService route splitting traffic between two subsets."""

import re
from dataclasses import dataclass

from rollout.errors import InputError

# RFC 1123 label, as Kubernetes checks namespaces and (most) object names.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# RFC 1123 subdomain: object names such as VirtualServices may contain dots.
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


def check_dns1123_label(field: str, value: str) -> str:
    """Return `value` if it is a DNS-1123 label, else raise an InputError naming the field."""
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise InputError(f"{field}: {value!r} is not a valid DNS-1123 label")
    return value


def check_dns1123_subdomain(field: str, value: str) -> str:
    """Return `value` if it is a DNS-1123 subdomain (a valid object name), else raise."""
    if len(value) > 253 or not _DNS1123_SUBDOMAIN.match(value):
        raise InputError(f"{field}: {value!r} is not a valid DNS-1123 name")
    return value


@dataclass(frozen=True)
class Target:
    """The managed route of one VirtualService and the two DestinationRule subsets it splits.

    `route` is the HTTP route's name; None means "the single HTTP route that holds both
    subsets". `destination_rule` None means "the DestinationRule of the route's host".
    """

    namespace: str
    virtual_service: str
    stable: str
    canary: str
    route: str | None = None
    destination_rule: str | None = None

    def __post_init__(self) -> None:
        check_dns1123_label("--namespace", self.namespace)
        check_dns1123_subdomain("--virtual-service", self.virtual_service)
        check_dns1123_label("--stable", self.stable)
        check_dns1123_label("--canary", self.canary)
        if self.destination_rule is not None:
            check_dns1123_subdomain("--destination-rule", self.destination_rule)
        if self.stable == self.canary:
            raise InputError(f"--stable and --canary are both {self.stable!r}; they must differ")

    def __str__(self) -> str:
        route = f" route {self.route}" if self.route else ""
        return f"{self.namespace}/{self.virtual_service}{route} ({self.stable} -> {self.canary})"
