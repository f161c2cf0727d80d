"""URL gates: a `confirm-step`/`confirm-promotion` gate cleared by a URL that answers 2xx.

The engine decides when a rollout waits at a gate; this only asks the URL, from the guard
job, whether it may go on. The URL may carry a token, so it is a secret: never logged,
never part of an error message.
"""

from collections.abc import Mapping

import requests
import structlog
from pydantic import SecretStr

from rollout.policy import RolloutPolicy
from rollout.secrets import SecretReader

log = structlog.get_logger(__name__)

TIMEOUT_S = 5.0


class UrlGate:
    """One gate's URL. `open()` is True only for a 2xx answer; anything else waits."""

    def __init__(self, name: str, url: SecretStr, timeout_s: float = TIMEOUT_S) -> None:
        self.name = name
        self._url = url
        self._timeout_s = timeout_s

    def open(self) -> bool:
        """Ask the URL once; a timeout, a refused connection or a non-2xx answer is 'not yet'."""
        try:
            response = requests.get(self._url.get_secret_value(), timeout=self._timeout_s)
        except requests.RequestException as exc:
            log.warning("gate.unreachable", gate=self.name, error=type(exc).__name__)
            return False
        log.info("gate.asked", gate=self.name, status=response.status_code)
        return 200 <= response.status_code < 300

    def __repr__(self) -> str:
        return f"UrlGate({self.name!r}, url=***)"


def url_gates(policy: RolloutPolicy, secrets: SecretReader) -> Mapping[str, UrlGate]:
    """The policy's gates that a URL clears, by engine gate name; read now, so a missing
    variable or Secret stops the run before it changes anything."""
    gates = policy.spec.gates
    if gates is None:
        return {}
    found = {}
    for name, gate in (
        ("confirm-step", gates.confirm_step),
        ("confirm-promotion", gates.confirm_promotion),
    ):
        if gate is not None and gate.url is not None:
            found[name] = UrlGate(name, secrets.read(gate.url, f"gates.{name}.url"))
    return found
