"""How API failures reach the user: missing and rejected objects are input (exit 2), the
rest is infrastructure (exit 3); always one line, never a traceback.
"""

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner
from kubernetes.client.exceptions import ApiException

from rollout.cli import main
from rollout.errors import ExitCode, InputError
from rollout.sandbox.kubeapi import kubeconfig
from rollout.traffic.istio import ConflictError, api_error, pick_version


def api_exception(status: int, message: str) -> ApiException:
    exc = ApiException(status=status, reason="Reason")
    exc.body = json.dumps({"kind": "Status", "message": message})
    return exc


@pytest.mark.parametrize(
    ("status", "code", "text"),
    [
        (404, ExitCode.INVALID_INPUT, "VirtualService demo/web not found"),
        (422, ExitCode.INVALID_INPUT, "rejected by the API server: spec.http: bad"),
        (400, ExitCode.INVALID_INPUT, "rejected by the API server: spec.http: bad"),
        (409, ExitCode.INCOMPLETE, "changed by another writer (spec.http: bad)"),
        (403, ExitCode.INCOMPLETE, "the Kubernetes API answered 403: spec.http: bad"),
        (500, ExitCode.INCOMPLETE, "the Kubernetes API answered 500: spec.http: bad"),
        (503, ExitCode.INCOMPLETE, "the Kubernetes API answered 503: spec.http: bad"),
    ],
)
def test_api_statuses_map_to_exit_codes(status: int, code: ExitCode, text: str) -> None:
    error = api_error("VirtualService demo/web", api_exception(status, "spec.http: bad"))
    assert error.exit_code == code
    assert str(error).startswith("VirtualService demo/web")
    assert text in str(error)
    assert isinstance(error, ConflictError) == (status == 409)


def test_unreachable_api_server_exits_3_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig(f"http://127.0.0.1:{port}"))
    args = ["set-weight", "-n", "demo", "--virtual-service", "web", "--stable", "v1"]
    args += ["--canary", "v2", "--kubeconfig", str(config), "30"]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == ExitCode.INCOMPLETE
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: the networking.istio.io API group: cannot reach the Kubernetes")


@pytest.mark.parametrize(
    ("served", "version"),
    [({"v1", "v1beta1", "v1alpha3"}, "v1"), ({"v1beta1", "v1alpha3"}, "v1beta1")],
)
def test_uses_v1_when_served_else_v1beta1(served: set[str], version: str) -> None:
    assert pick_version(served) == version


def test_cluster_without_istio_networking_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"does not serve networking\.istio\.io v1 or v1beta1"):
        pick_version({"v1alpha3"})
