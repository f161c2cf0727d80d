"""`rollout abort TARGET`: traffic to stable now, and a stored unfinished run marked aborted."""

from datetime import UTC, datetime

from click.testing import CliRunner
from conftest import Cluster

from rollout.cli import main
from rollout.engine import Phase, RolloutState
from rollout.store import AnnotationStore, Holder
from rollout.target import Target
from rollout.traffic.istio import IstioRouter, KubeIstioStore

TARGET = Target(namespace="demo", virtual_service="cello-app", stable="v1", canary="v2")
FLAGS = ["-n", "demo", "--virtual-service", "cello-app", "--stable", "v1", "--canary", "v2"]


def test_abort_moves_traffic_to_stable_and_marks_the_stored_run(cluster: Cluster) -> None:
    objects = KubeIstioStore(cluster.api)
    router = IstioRouter(objects)
    router.set_canary_weight(TARGET, 20)
    holder = AnnotationStore(objects, TARGET, Holder("ci-runner-7", 4242))
    holder.acquire(datetime.now(UTC))
    state = RolloutState(phase=Phase.PROGRESSING, step=1, weight=20)
    holder.save(state, datetime.now(UTC))

    result = CliRunner().invoke(main, ["abort", *FLAGS, "--kubeconfig", cluster.kubeconfig])

    assert result.exit_code == 0, result.output
    assert router.current_weights(TARGET).canary == 0
    stored = holder.load()
    assert stored is not None
    assert (stored.state.phase, stored.state.aborted) == (Phase.ROLLED_BACK, True)
    assert stored.holder == "ci-runner-7:4242"  # kept, so the holder adopts the abort
    assert "marked aborted at step 2" in result.output


def test_abort_without_a_stored_run_only_moves_traffic(cluster: Cluster) -> None:
    IstioRouter(KubeIstioStore(cluster.api)).set_canary_weight(TARGET, 30)
    result = CliRunner().invoke(main, ["abort", *FLAGS, "--kubeconfig", cluster.kubeconfig])
    assert result.exit_code == 0, result.output
    assert IstioRouter(KubeIstioStore(cluster.api)).current_weights(TARGET).canary == 0
    assert "marked aborted" not in result.output
