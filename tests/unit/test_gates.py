"""Gates in the policy and URL gates against a real local HTTP receiver."""

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from rollout.cli import main
from rollout.driver import plan_of
from rollout.gates import UrlGate
from rollout.policy import load_policy

POLICY = """\
apiVersion: rollout.cello.dev/v1alpha1
kind: RolloutPolicy
metadata: {{name: gated}}
spec:
  steps: [10, 50, 100]
  metrics:
    - {{name: errors, provider: istio, kind: errorRate, max: 0.05}}
  gates:
{gates}
"""


def write_policy(tmp_path: Path, gates: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(gates=gates))
    return path


def test_gates_set_the_plan(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "    confirmPromotion: {}\n")
    plan = plan_of(load_policy(path))
    assert (plan.confirm_step, plan.confirm_promotion) == (False, True)
    assert plan.gate_before(1) is None
    assert plan.gate_before(2) == "confirm-promotion"


def test_a_gate_url_written_in_the_policy_is_refused(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "    confirmStep: {url: 'https://hooks.example/t0ken'}\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    assert "spec.gates.confirmStep.url" in result.output
    assert "t0ken" not in result.output


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Answer]]]:
    handler = type("Answer", (_Answer,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/gate?token=s3cret", handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_url_gate_opens_only_on_2xx(receiver: tuple[str, type[_Answer]]) -> None:
    url, handler = receiver
    gate = UrlGate("confirm-step", SecretStr(url))
    assert gate.open()
    handler.status = 503
    assert not gate.open()
    handler.status = 204
    assert gate.open()


def test_an_unreachable_gate_url_waits_and_never_shows_the_url(
    receiver: tuple[str, type[_Answer]],
) -> None:
    url, _ = receiver
    dead = "http://127.0.0.1:9/gate?token=s3cret"  # discard port: nothing listens
    gate = UrlGate("confirm-promotion", SecretStr(dead), timeout_s=1)
    assert not gate.open()
    assert "s3cret" not in repr(gate)
    assert "s3cret" not in repr(UrlGate("x", SecretStr(url)))
