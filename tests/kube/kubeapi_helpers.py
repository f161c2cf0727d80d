"""Helpers for the stand-in tests: manifests, objects, and the write-history endpoint."""

import copy
import subprocess
from pathlib import Path
from typing import Any, Protocol

import requests
import yaml

from rollout.sandbox.kubeapi import KubeApiServer

MANIFESTS = Path(__file__).parent / "manifests"
ISTIO = "networking.istio.io"
Obj = dict[str, Any]


class Kubectl(Protocol):
    """The `kubectl` fixture: runs kubectl in the test's namespace, never raises."""

    def __call__(
        self, *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]: ...


def guide_objects() -> tuple[Obj, Obj]:
    """The Cello guide's VirtualService (90/10) and DestinationRule, fresh copies."""
    vs, dr = yaml.safe_load_all((MANIFESTS / "cello-guide.yaml").read_text())
    return copy.deepcopy(vs), copy.deepcopy(dr)


def vs_path(namespace: str, name: str = "cello-app", version: str = "v1") -> str:
    return f"/apis/{ISTIO}/{version}/namespaces/{namespace}/virtualservices/{name}"


def history(server: KubeApiServer, object_path: str) -> list[dict[str, Any]]:
    """The write history of the object at API path `object_path`, through the endpoint."""
    response = requests.get(f"{server.url}/_sandbox/history{object_path}", timeout=5)
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items
