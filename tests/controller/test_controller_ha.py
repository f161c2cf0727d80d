"""Restarts and replicas: the controller keeps no state of its own, so a restarted or
standby controller resumes every rollout where its status says, and only the Lease holder
ever acts.

Must-show 1: SIGKILL at step 3 or later and a restart resume at the same step and finish;
two controllers at once never both act (each step written once); killing the leader hands
over within the lease time and the rollout finishes.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from controller_helpers import HERE, LEASE_SECONDS, Cluster

from rollout import kube
from rollout.sandbox.kubeapi import kubeconfig

STEPS = [20, 40, 60, 80, 100]
# The follower takes over within the lease of the leader's last renewal; half a second for
# this test's polling and a busy 2-core machine.
HANDOVER_LIMIT_S = LEASE_SECONDS + 0.5


def start(cluster: Cluster) -> None:
    """Create a RolloutPolicy and a CanaryRollout referring to it, as `kubectl apply` would."""
    policy = yaml.safe_load((HERE / "policy.yaml").read_text())
    cluster.custom.create_namespaced_custom_object(
        "rollout.cello.dev", "v1alpha1", "demo", "rolloutpolicies", policy
    )
    rollout = {
        "apiVersion": "rollout.cello.dev/v1alpha1",
        "kind": "CanaryRollout",
        "metadata": {"name": "cello-app"},
        "spec": {
            "target": {
                "virtualService": "cello-app",
                "destinationRule": "cello-app",
                "stable": "v1",
                "canary": "v2",
            },
            "policyRef": {"name": policy["metadata"]["name"]},
        },
    }
    cluster.custom.create_namespaced_custom_object(
        "rollout.cello.dev", "v1alpha1", "demo", "canaryrollouts", rollout
    )


def at_step(cluster: Cluster, step: int) -> bool:
    return int(cluster.status("cello-app").get("step", -1)) >= step


def succeeded(cluster: Cluster) -> bool:
    return cluster.status("cello-app").get("phase") == "Succeeded"


def progressing_steps(cluster: Cluster) -> list[int]:
    history = cluster.status("cello-app")["history"]
    return [t["step"] for t in history if t["phase"] in ("Progressing", "Promoting")]


def test_sigkill_at_step_3_and_restart_resumes_at_that_step(cluster: Cluster) -> None:
    first = cluster.controller("first")
    start(cluster)
    cluster.wait_for("step 3", lambda: at_step(cluster, 2))
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed_at = cluster.status("cello-app")["step"]
    assert killed_at >= 2
    cluster.controller("second")
    cluster.wait_for("Succeeded after the restart", lambda: succeeded(cluster), timeout_s=90)
    # Each step once, in order: the restart neither went back nor jumped ahead.
    assert progressing_steps(cluster) == [0, 1, 2, 3, 4]
    assert cluster.weight_writes("cello-app") == STEPS


def test_two_controllers_only_the_leader_acts_and_a_killed_leader_hands_over(
    cluster: Cluster,
) -> None:
    processes = {"a": cluster.controller("a")}
    cluster.wait_for("a leads", lambda: cluster.lease_holder().startswith("a_"))
    processes["b"] = cluster.controller("b")
    start(cluster)
    cluster.wait_for("step 3", lambda: at_step(cluster, 2))
    processes["a"].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    took_over = cluster.wait_for("b leads", lambda: cluster.lease_holder().startswith("b_"))
    handover = took_over - killed
    print(f"handover after SIGKILL of the leader: {handover:.2f}s (lease {LEASE_SECONDS}s)")
    assert handover <= HANDOVER_LIMIT_S
    cluster.wait_for("Succeeded after the handover", lambda: succeeded(cluster), timeout_s=90)
    assert progressing_steps(cluster) == [0, 1, 2, 3, 4]
    assert cluster.weight_writes("cello-app") == STEPS
    assert (
        "rollout.transition" not in (cluster.logs / "b.log").read_text().split("leader.changed")[0]
    ), "b acted before it led"


def test_sigterm_releases_the_lease_at_once(cluster: Cluster) -> None:
    leader = cluster.controller("a")
    cluster.wait_for("a leads", lambda: cluster.lease_holder().startswith("a_"))
    leader.send_signal(signal.SIGTERM)
    assert leader.wait(timeout=LEASE_SECONDS * 3) == 0
    assert cluster.lease_holder() == ""


def api_process(port: int, port_file: Path) -> subprocess.Popen[bytes]:
    """The stand-in as a process of its own, so that killing it drops every connection."""
    argv = [sys.executable, "-m", "rollout.sandbox.kubeapi", "--port", str(port),
            "--port-file", str(port_file), "--namespace", "demo", "--namespace",
            "cello-rollout", "--filename", str(HERE / "objects.yaml")]  # fmt: skip
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not port_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


def test_after_the_api_server_restarts_the_controller_relists_and_drives(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Every watch and connection breaks, and the objects are gone with the old server: only
    a fresh list finds the rollout created afterwards."""
    port_file = tmp_path / "port"
    first = api_process(0, port_file)
    port = int(port_file.read_text())
    config = tmp_path / "kubeconfig-process"
    config.write_text(kubeconfig(f"http://127.0.0.1:{port}", "demo"))
    cluster.kubeconfig = str(config)
    cluster.api = kube.api_client(str(config))
    try:
        cluster.controller("a")
        cluster.wait_for("a leads", lambda: cluster.lease_holder().startswith("a_"))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = api_process(port, port_file)
        try:
            done = cluster.rollout(
                "start", "cello-app", "-n", "demo", "--virtual-service", "cello-app",
                "--stable", "v1", "--canary", "v2", "--policy", str(HERE / "policy.yaml"),
                "--wait", "--timeout", "90",
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
