"""Reading secret values (webhook URLs, signing keys, gate URLs) where the policy says.

A policy never holds a secret itself, only where to read it: an environment variable or a
key of a Kubernetes Secret in the rollout's namespace. Values are read once when a rollout
starts, so a missing one is bad input before anything changes; error messages name the
variable or the Secret, never the value.
"""

import base64
import binascii
import os
from collections.abc import Mapping

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from rollout.errors import InfraError, InputError
from rollout.policy import SecretSource


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
