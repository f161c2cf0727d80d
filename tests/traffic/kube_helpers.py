"""Talking to the Kubernetes API stand-in from the traffic tests: objects and the real CLI."""

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import requests
from click.testing import CliRunner, Result
from istio_shapes import NAMESPACE, Obj
from kubernetes import client

from rollout import kube
from rollout.cli import main

GROUP = "networking.istio.io"
PLURALS = {"VirtualService": "virtualservices", "DestinationRule": "destinationrules"}
# Fields the server changes on every write: not part of what "the same object" means.
VOLATILE = ("resourceVersion", "generation", "managedFields")


def comparable(obj: Obj) -> Obj:
    """`obj` without the fields that change on any write."""
    meta = {k: v for k, v in obj["metadata"].items() if k not in VOLATILE}
    return {**obj, "metadata": meta}


@dataclass
class Cluster:
    """One namespace of the stand-in, reached through the kubeconfig it wrote."""

    kubeconfig: Path
    namespace: str
    server_url: str

    @cached_property
    def api(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(kube.api_client(str(self.kubeconfig)))

    def create(self, *objs: Obj) -> None:
        """Create objects written for namespace demo (istio_shapes) in this test's namespace,
        FQDN hosts included, so each test has a namespace of its own.
        """
        for obj in objs:
            text = json.dumps(obj).replace(f".{NAMESPACE}.svc.", f".{self.namespace}.svc.")
            body = json.loads(text)
            body["metadata"]["namespace"] = self.namespace
            self.api.create_namespaced_custom_object(
                GROUP, "v1", self.namespace, PLURALS[obj["kind"]], body
            )

    def get(self, name: str, kind: str = "VirtualService") -> Obj:
        obj: Obj = self.api.get_namespaced_custom_object(
            GROUP, "v1", self.namespace, PLURALS[kind], name
        )
        return obj

    def writes(self, name: str, kind: str = "VirtualService") -> list[Obj]:
        """Every successful write request to an object, oldest first, with the object as
        stored after it, from the stand-in's write history (a test endpoint). Writes that
        changed nothing are listed too, so an empty history after the create means nothing
        was sent.
        """
        path = f"apis/{GROUP}/v1/namespaces/{self.namespace}/{PLURALS[kind]}/{name}"
        response = requests.get(f"{self.server_url}/_sandbox/history/{path}", timeout=5)
        response.raise_for_status()
        items: list[Obj] = response.json()["items"]
        return items

    def json_patch(self, name: str, patch: list[Obj]) -> None:
        """Change a VirtualService as another client would."""
        self.api.patch_namespaced_custom_object(
            GROUP,
            "v1",
            self.namespace,
            "virtualservices",
            name,
            patch,
            _content_type="application/json-patch+json",
        )

    def rollout(self, *args: str, vs: str = "cello-app") -> Result:
        """Run `rollout COMMAND [flags] [W]` against this namespace, as a user would."""
        command, *rest = args
        flags = ["-n", self.namespace, "--virtual-service", vs, "--stable", "v1"]
        flags += ["--canary", "v2", "--kubeconfig", str(self.kubeconfig)]
        return CliRunner().invoke(main, [command, *flags, *rest])
