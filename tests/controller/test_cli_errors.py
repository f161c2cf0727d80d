"""The CanaryRollout commands on bad input exit 2 with one line, on an unreachable cluster
exit 3 with one line; never a traceback."""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_helpers import HERE, ROLLOUT

from rollout.sandbox.kubeapi import KubeApiServer, kubeconfig


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    server = KubeApiServer().start()
    server.create_namespaces(["demo"])
    config = tmp_path_factory.mktemp("cli") / "kubeconfig"
    config.write_text(kubeconfig(server.url, "demo"))
    yield {**os.environ, "KUBECONFIG": str(config)}
    server.stop()


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ROLLOUT, *args], env=env, capture_output=True, text=True, timeout=60)


START = ["start", "web", "-n", "demo", "--virtual-service", "web", "--stable", "v1",
         "--canary", "v2"]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status"], "give a CanaryRollout NAME, or --virtual-service, --stable and --canary"),
        (["status", "web", "--virtual-service", "web"], "not both"),
        (["abort", "web", "--stable", "v1"], "not both"),
        (["promote", "Not_A_Name"], "NAME: 'Not_A_Name' is not a valid DNS-1123 name"),
        (["promote", "missing", "-n", "demo"], "CanaryRollout demo/missing not found"),
        (["pause", "missing", "-n", "demo"], "CanaryRollout demo/missing not found"),
        (["status", "missing", "-n", "demo"], "CanaryRollout demo/missing not found"),
        ([*START, "--policy", "nope.yaml"], "nope.yaml: cannot read"),
    ],
)
def test_bad_input_is_exit_2_in_one_line(
    env: dict[str, str], args: list[str], message: str
) -> None:
    done = run(env, *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_an_unreachable_cluster_is_exit_3_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(kubeconfig("http://127.0.0.1:9", "demo"))
    env = {**os.environ, "KUBECONFIG": str(config)}
    for args in (["promote", "web"], [*START, "--policy", str(HERE / "policy.yaml")]):
        done = run(env, *args)
        assert done.returncode == 3, done.stderr
        assert "cannot reach the Kubernetes API" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
