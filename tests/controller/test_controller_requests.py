"""People's commands on a CanaryRollout: pause, resume, promote, retry and abort each reach
the controller as a request that it applies exactly once, and `rollout start --wait` exits
4 when a person aborts the run it waits for."""

import subprocess

from controller_helpers import HERE, ROLLOUT, Cluster

NAME = "cello-app"
START = [
    "start", NAME, "-n", "demo", "--virtual-service", "cello-app", "--stable", "v1",
    "--canary", "v2", "--policy", str(HERE / "policy-slow.yaml"),
]  # fmt: skip


def phase(cluster: Cluster) -> str:
    return str(cluster.status(NAME).get("phase"))


def command(cluster: Cluster, *args: str) -> str:
    done = cluster.rollout(*args, "-n", "demo")
    assert done.returncode == 0, done.stderr
    return done.stdout


def reasons(cluster: Cluster) -> list[str]:
    """Why each transition of the current run happened (a RolledBack keeps the reason of
    its RollingBack, so only the transitions into other phases are listed)."""
    history = cluster.status(NAME)["history"]
    return [t["reason"] for t in history if t["phase"] != "RolledBack"]


def test_requests_are_applied_once_and_an_abort_ends_start_wait_with_4(cluster: Cluster) -> None:
    cluster.controller("a")
    assert cluster.rollout(*START).returncode == 0
    cluster.wait_for("step 1", lambda: phase(cluster) == "Progressing")

    command(cluster, "pause", NAME)
    cluster.wait_for("paused", lambda: phase(cluster) == "Paused")
    command(cluster, "resume", NAME)
    cluster.wait_for("resumed", lambda: phase(cluster) == "Progressing")
    command(cluster, "promote", NAME)
    cluster.wait_for("promoted", lambda: phase(cluster) == "Succeeded")
    assert cluster.weight_writes("cello-app") == [20, 100]
    assert reasons(cluster).count("promote by request") == 1

    command(cluster, "retry", NAME)
    cluster.wait_for("a new run", lambda: cluster.status(NAME).get("step") == 0)
    assert phase(cluster) == "Progressing" and reasons(cluster) == ["started"]

    env = {"KUBECONFIG": cluster.kubeconfig, "PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1"}
    waiting = subprocess.Popen(
        [ROLLOUT, *START, "--wait", "--timeout", "60"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert waiting.stdout is not None
    # Abort only once `start` has updated the object: an abort landing first would end the
    # run, and `start` would then retry it (what `start` on a finished run means).
    assert "v1 -> v2" in waiting.stdout.readline()
    out = command(cluster, "abort", NAME)
    assert "abort requested" in out
    assert waiting.wait(timeout=60) == 4, waiting.communicate()
    status = cluster.status(NAME)
    assert status["phase"] == "RolledBack" and status["aborted"] is True
    assert reasons(cluster).count("abort by request") == 1
    assert cluster.weight_writes("cello-app") == [20, 100, 20, 0]
    shown = command(cluster, "status", NAME)
    assert shown.startswith("demo/cello-app: RolledBack")
    # Handled requests are pruned from the object as new ones arrive: only the last is left.
    annotations = cluster.get(NAME)["metadata"].get("annotations") or {}
    assert [v for k, v in annotations.items() if k.startswith("request.")] == ["abort"]


def test_a_new_canary_subset_starts_a_new_run(cluster: Cluster) -> None:
    cluster.controller("a")
    assert cluster.rollout(*START).returncode == 0
    cluster.wait_for("step 1", lambda: phase(cluster) == "Progressing")
    command(cluster, "abort", NAME)
    cluster.wait_for("aborted", lambda: phase(cluster) == "RolledBack")
    # The next release: the route's canary destination becomes v3, then the rollout's spec.
    vs = cluster.custom.get_namespaced_custom_object(
        "networking.istio.io", "v1", "demo", "virtualservices", "cello-app"
    )
    vs["spec"]["http"][0]["route"][1]["destination"]["subset"] = "v3"
    cluster.custom.replace_namespaced_custom_object(
        "networking.istio.io", "v1", "demo", "virtualservices", "cello-app", vs
    )
    argv = [*START[:-1], str(HERE / "policy.yaml"), "--wait", "--timeout", "60"]
    argv[argv.index("v2")] = "v3"
    done = cluster.rollout(*argv)
    assert done.returncode == 1, done.stdout + done.stderr  # v3 is the faulty version
    status = cluster.status(NAME)
    assert status["run"] == {"stable": "v1", "canary": "v3"}
    assert status["aborted"] is False and reasons(cluster)[0] == "started"


def test_approve_clears_the_gate_of_the_step_it_names(cluster: Cluster) -> None:
    cluster.controller("a")
    gated = [*START[:-1], str(HERE / "policy-gated.yaml")]
    assert cluster.rollout(*gated).returncode == 0

    def waiting_at(step: int) -> bool:
        status = cluster.status(NAME)
        return status.get("awaiting") == "confirm-step" and status.get("step") == step

    cluster.wait_for("the gate after step 1", lambda: waiting_at(0))
    assert "approve:0 requested" in command(cluster, "approve", NAME)
    cluster.wait_for("the gate after step 2", lambda: waiting_at(1), timeout_s=30)
    assert cluster.weight_writes("cello-app") == [20, 40]
    command(cluster, "abort", NAME)
    cluster.wait_for("aborted", lambda: phase(cluster) == "RolledBack")
    done = cluster.rollout("approve", NAME, "-n", "demo")
    assert done.returncode == 2 and "waits at no gate" in done.stderr
