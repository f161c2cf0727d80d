"""Which events go to which sink: the policy's `notifications`, plus a per-rollout file.

A per-rollout file (`rollout run --notify FILE`) holds the same mapping as a policy's
`spec.notifications`. Its sinks are added to the policy's; one with the name of a policy
sink replaces it, so a rollout can send the team channel fewer events, or none
(`events: []`).

URLs and signing keys come only from environment variables or Secret keys, read once when
the rollout starts. A missing one is bad input (nothing is changed); the messages name the
variable or the Secret, never the value.
"""

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from rollout.errors import InfraError, InputError
from rollout.notify import slack, webhook
from rollout.notify.delivery import RetryPolicy, Sink
from rollout.notify.events import KINDS
from rollout.notify.http import HttpSink
from rollout.notify.kube_events import KubeEventSink
from rollout.policy import (
    NotificationKind,
    Notifications,
    NotificationSink,
    SecretSource,
    parse_document,
    read_document,
)


@dataclass(frozen=True)
class Route:
    """A ready sink and the events it is sent."""

    sink: Sink
    events: frozenset[NotificationKind]


def load_file(path: str | Path) -> Notifications:
    """A per-rollout notifications file; errors are `file:line: field: reason`."""
    return parse_document(read_document(path), Notifications)


def merged(*layers: Notifications | None) -> list[NotificationSink]:
    """The sinks of all layers, in order; a later sink replaces an earlier one's name."""
    sinks: dict[str, NotificationSink] = {}
    for layer in layers:
        for sink in layer.sinks if layer is not None else ():
            sinks[sink.name] = sink
    return list(sinks.values())


class SecretReader:
    """Reads secret values from the environment or from Secrets in one namespace."""

    def __init__(
        self, api: client.ApiClient, namespace: str, environ: Mapping[str, str] = os.environ
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._environ = environ

    def read(self, source: SecretSource, what: str) -> SecretStr:
        """The value `source` names; `what` says which field asked, for error messages."""
        if source.env is not None:
            value = self._environ.get(source.env, "").strip()
            origin = f"environment variable {source.env}"
        else:
            ref = source.secret_key_ref
            assert ref is not None  # the model holds exactly one source
            value = self._secret_key(ref.name, ref.key, what)
            origin = f"key {ref.key!r} of Secret {self._namespace}/{ref.name}"
        if not value:
            raise InputError(f"{what}: {origin} is not set or empty")
        return SecretStr(value)

    def _secret_key(self, name: str, key: str, what: str) -> str:
        where = f"Secret {self._namespace}/{name}"
        try:
            secret = client.CoreV1Api(self._api).read_namespaced_secret(name, self._namespace)
        except ApiException as exc:
            if exc.status in (403, 404):
                raise InputError(f"{what}: cannot read {where} (HTTP {exc.status})") from None
            raise InfraError(f"{what}: reading {where} failed (HTTP {exc.status})") from None
        encoded = (secret.data or {}).get(key)
        if encoded is None:
            raise InputError(f"{what}: {where} has no key {key!r}")
        try:
            return base64.b64decode(encoded).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            raise InputError(f"{what}: key {key!r} of {where} is not UTF-8 text") from None


def routes(
    sinks: list[NotificationSink], secrets: SecretReader, api: client.ApiClient
) -> list[Route]:
    """Ready sinks for `sinks`, their secrets read now; sinks sent no event are left out."""
    return [
        Route(
            _sink(spec, secrets, api), frozenset(spec.events if spec.events is not None else KINDS)
        )
        for spec in sinks
        if spec.events != []
    ]


def _sink(spec: NotificationSink, secrets: SecretReader, api: client.ApiClient) -> Sink:
    retry = RetryPolicy(
        attempts=spec.retry.attempts,
        backoff=_seconds(spec.retry.backoff),
        max_backoff=_seconds(spec.retry.max_backoff),
    )
    timeout = _seconds(spec.timeout)
    if spec.type == "kubernetesEvents":
        return KubeEventSink(spec.name, api, timeout, retry)
    what = f"notifications sink {spec.name}"
    assert spec.url is not None  # the model requires a url for HTTP sinks
    url = secrets.read(spec.url, f"{what}: url")
    if not url.get_secret_value().startswith(("https://", "http://")):
        raise InputError(f"{what}: url is not an http(s) URL")
    if spec.type == "slack":
        return HttpSink(spec.name, spec.type, url, slack.encode, timeout, retry)
    assert spec.signing_key is not None  # the model requires a key for webhooks
    key = secrets.read(spec.signing_key, f"{what}: signingKey")
    return HttpSink(spec.name, spec.type, url, webhook.encoder(key), timeout, retry)


def _seconds(duration: timedelta) -> float:
    return duration.total_seconds()
