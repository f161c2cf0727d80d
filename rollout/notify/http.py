"""The HTTP delivery Slack and generic webhooks share: one POST per attempt, bounded by a
timeout, with errors described without the URL.

The URL is a secret (a Slack incoming-webhook URL is its own credential), and `requests`
puts it in its exception messages; so failures are reported by kind and status only, and
raised `from None` so no traceback carries the original.
"""

from collections.abc import Callable
from dataclasses import dataclass

import requests
from pydantic import SecretStr

from rollout.notify.delivery import DeliveryError, RetryPolicy
from rollout.notify.events import NotificationEvent

Encoder = Callable[[NotificationEvent], tuple[bytes, dict[str, str]]]
# Rate limits and time-outs on the receiver's side are worth another attempt; other 4xx
# mean the request or the URL is wrong, and repeating it cannot help.
_RETRYABLE_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True)
class HttpSink:
    """POSTs each event, encoded by `encode` (body and headers), to a secret URL."""

    name: str
    type: str
    url: SecretStr
    encode: Encoder
    timeout: float
    retry: RetryPolicy

    def send(self, event: NotificationEvent) -> None:
        """One attempt; raises DeliveryError on a network failure or a non-2xx answer."""
        body, headers = self.encode(event)
        try:
            with requests.post(
                self.url.get_secret_value(),
                data=body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            ) as response:
                status = response.status_code
        except requests.Timeout:
            raise DeliveryError(f"no answer within {self.timeout:g}s", retryable=True) from None
        except requests.RequestException as exc:
            kind = type(exc).__name__
            raise DeliveryError(f"request failed ({kind})", retryable=True) from None
        if not 200 <= status < 300:
            retryable = status >= 500 or status in _RETRYABLE_4XX
            raise DeliveryError(f"HTTP {status}", retryable=retryable)
