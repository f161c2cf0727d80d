"""`rollout sandbox up --components kube` / `down`, run as a user runs them (a separate
`rollout` process, so the stand-in outlives the command that started it)."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubeapi_helpers import MANIFESTS
from kubernetes import client

from rollout import kube
from rollout.pids import alive

pytestmark = pytest.mark.kube

ROLLOUT = str(Path(sys.executable).with_name("rollout"))


def rollout(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ROLLOUT, *args], capture_output=True, text=True, timeout=60)


def test_up_serves_through_the_kubeconfig_and_down_leaves_no_process(tmp_path: Path) -> None:
    directory = tmp_path / "sandbox"
    up = rollout(
        "sandbox", "up", "--components", "kube", "--dir", str(directory),
        "-n", "demo", "-n", "default", "-f", str(MANIFESTS / "cello-guide.yaml"),
    )  # fmt: skip
    pid = int((directory / "kube.pid").read_text())
    try:
        assert up.returncode == 0, up.stderr
        assert "Kubernetes API stand-in at http://127.0.0.1:" in up.stdout
        kubeconfig = directory / "kubeconfig"
        assert (directory / "env").read_text() == f"KUBECONFIG={kubeconfig.resolve()}\n"
        assert yaml.safe_load(kubeconfig.read_text())["current-context"] == "sandbox"

        api = kube.api_client(str(kubeconfig))
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
        assert names == ["default", "demo"]
        preloaded = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "networking.istio.io", "v1beta1", "demo", "virtualservices", "cello-app"
        )
        assert preloaded["spec"]["http"][0]["route"][0]["weight"] == 90

        again = rollout("sandbox", "up", "--dir", str(directory))
        assert again.returncode == 2 and "already runs" in again.stderr
    finally:
        down = rollout("sandbox", "down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr
    assert f"kube: stopped (pid {pid})" in down.stdout
    assert not alive(pid)
    assert not (directory / "kube.pid").exists()


def test_down_is_harmless_when_nothing_runs(tmp_path: Path) -> None:
    result = rollout("sandbox", "down", "--dir", str(tmp_path / "never-started"))
    assert (result.returncode, result.stderr) == (0, "")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ("--components", "kube,nope"),
            "error: --components: unknown nope (known: kube, apps, mesh, prometheus, load)\n",
        ),
        (("-n", "Demo"), "error: --namespace: 'Demo' is not a valid DNS-1123 label\n"),
        (("--components", "mesh,load"), "error: --components: mesh needs kube, apps\n"),
    ],
)
def test_bad_flags_are_exit_2_and_start_nothing(
    tmp_path: Path, flags: tuple[str, ...], message: str
) -> None:
    result = rollout("sandbox", "up", "--dir", str(tmp_path), *flags)
    assert (result.returncode, result.stderr) == (2, message)
    assert list(tmp_path.glob("*.pid")) == []


def test_a_bad_preload_file_is_reported_and_nothing_is_left_running(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (MANIFESTS / "cello-guide.yaml").read_text().replace("weight: 10", "weight: '5'")
    )
    result = rollout("sandbox", "up", "--dir", str(tmp_path / "sb"), "-f", str(bad))
    assert result.returncode == 2
    assert "kube exited at start" in result.stderr
    assert "spec.http[0].route[1].weight" in result.stderr
    assert list((tmp_path / "sb").glob("*.pid")) == []


def test_a_port_in_use_is_reported_as_an_infrastructure_failure(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = rollout("sandbox", "up", "--dir", str(tmp_path), "--port", port)
    assert result.returncode == 3
    assert "kube exited at start" in result.stderr and "kubeapi.bind_failed" in result.stderr
    assert list(tmp_path.glob("*.pid")) == []
