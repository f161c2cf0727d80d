"""Kubernetes Events (core v1) on the rollout's object, so `kubectl describe` and every
event-based tool see what the rollout did next to the object it did it to."""

import socket
from dataclasses import dataclass

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from rollout.notify.delivery import DeliveryError, RetryPolicy
from rollout.notify.events import NotificationEvent, headline

COMPONENT = "cello-rollout"
MESSAGE_MAX = 1024  # the API server truncates longer messages; we do it ourselves


def kube_event(event: NotificationEvent) -> client.CoreV1Event:
    """The core v1 Event; `reason` is the event kind in CamelCase (e.g. RolledBack)."""
    rollout = event.where.rollout
    message = f"{headline(event)}: {event.reason}"
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{rollout.name}.", namespace=rollout.namespace),
        involved_object=client.V1ObjectReference(
            api_version=rollout.api_version,
            kind=rollout.kind,
            namespace=rollout.namespace,
            name=rollout.name,
        ),
        reason=event.kind[0].upper() + event.kind[1:],
        message=message if len(message) <= MESSAGE_MAX else message[: MESSAGE_MAX - 1] + "…",
        type="Warning" if event.warning else "Normal",
        source=client.V1EventSource(component=COMPONENT),
        reporting_component=f"rollout.cello.dev/{COMPONENT}",
        reporting_instance=socket.gethostname(),
        first_timestamp=event.at,
        last_timestamp=event.at,
        count=1,
    )


@dataclass(frozen=True)
class KubeEventSink:
    """Creates one Event per notification in the involved object's namespace."""

    name: str
    api: client.ApiClient
    timeout: float
    retry: RetryPolicy
    type: str = "kubernetesEvents"

    def send(self, event: NotificationEvent) -> None:
        """One attempt; server errors and network trouble are retryable, 4xx are not."""
        namespace = event.where.rollout.namespace
        try:
            client.CoreV1Api(self.api).create_namespaced_event(
                namespace, kube_event(event), _request_timeout=self.timeout
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            retryable = status >= 500 or status in (0, 429)
            raise DeliveryError(f"API answered {status}", retryable=retryable) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            kind = type(exc).__name__
            raise DeliveryError(f"API unreachable ({kind})", retryable=True) from None
