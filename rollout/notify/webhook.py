"""Generic webhooks: CloudEvents 1.0 in structured mode (one JSON document holding the
attributes and the data), signed with HMAC-SHA256 over the exact body bytes.

The signature header follows the common `sha256=<hex>` convention; a receiver recomputes
the HMAC of the raw body with the shared key and compares in constant time. The body holds
the event's `id` and `time`, so a receiver can also refuse replays and duplicates (every
retry of one event carries the same id).
"""

import hashlib
import hmac
import json
from collections.abc import Callable

from pydantic import SecretStr

from rollout.notify.events import NotificationEvent

SIGNATURE_HEADER = "X-Rollout-Signature"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
TYPE_PREFIX = "dev.cello.rollout."


def cloud_event(event: NotificationEvent) -> dict[str, object]:
    """The event as a CloudEvents 1.0 JSON document; `type` is e.g. dev.cello.rollout.promoted."""
    rollout = event.where.rollout
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": rollout.path,
        "type": TYPE_PREFIX + event.kind,
        "subject": f"{rollout.namespace}/{rollout.name}",
        "time": event.at.isoformat(),
        "datacontenttype": "application/json",
        "data": event.to_data(),
    }


def sign(key: bytes, body: bytes) -> str:
    """The signature header's value for `body`."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def encoder(key: SecretStr) -> Callable[[NotificationEvent], tuple[bytes, dict[str, str]]]:
    """An encoder for HttpSink that signs every body with `key`."""

    def encode(event: NotificationEvent) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(cloud_event(event), separators=(",", ":")).encode()
        signature = sign(key.get_secret_value().encode(), body)
        return body, {"Content-Type": CONTENT_TYPE, SIGNATURE_HEADER: signature}

    return encode
