"""Which events go to which sink: the policy's `notifications`, plus a per-rollout file.

A per-rollout file (`rollout run --notify FILE`) holds the same mapping as a policy's
`spec.notifications`. Its sinks are added to the policy's; one with the name of a policy
sink replaces it, so a rollout can send the team channel fewer events, or none
(`events: []`).

URLs and signing keys come only from environment variables or Secret keys, read once when
the rollout starts. A missing one is bad input (nothing is changed); the messages name the
variable or the Secret, never the value.
"""

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from kubernetes import client

from rollout.errors import InputError
from rollout.notify import slack, webhook
from rollout.notify.delivery import RetryPolicy, Sink
from rollout.notify.events import KINDS
from rollout.notify.http import HttpSink
from rollout.notify.kube_events import KubeEventSink
from rollout.policy import (
    NotificationKind,
    Notifications,
    NotificationSink,
    parse_document,
    read_document,
)
from rollout.secrets import SecretReader


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
