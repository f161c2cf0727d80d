"""`rollout abort TARGET`: traffic to stable now, and a stored unfinished run marked aborted."""

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from standin import Cluster

from rollout.cli import main
from rollout.engine import Phase, RolloutState
from rollout.store import AnnotationStore, Holder
from rollout.target import Target
from rollout.traffic.istio import IstioRouter, KubeIstioStore

TARGET = Target(namespace="demo", virtual_service="cello-app", stable="v1", canary="v2")
FLAGS = ["-n", "demo", "--virtual-service", "cello-app", "--stable", "v1", "--canary", "v2"]


def _stored_run(cluster: Cluster, renewed: datetime) -> tuple[IstioRouter, AnnotationStore]:
    """A run at step 2 (20 %) held by a process on another host, last renewed `renewed`."""
    objects = KubeIstioStore(cluster.api)
    router = IstioRouter(objects)
    router.set_canary_weight(TARGET, 20)
    holder = AnnotationStore(objects, TARGET, Holder("ci-runner-7", 4242))
    holder.acquire(renewed)
    holder.save(RolloutState(phase=Phase.PROGRESSING, step=1, weight=20), renewed)
    return router, holder


def test_abort_sends_the_live_run_an_abort_and_moves_traffic_now(cluster: Cluster) -> None:
    router, holder = _stored_run(cluster, datetime.now(UTC))
    result = CliRunner().invoke(main, ["abort", *FLAGS, "--kubeconfig", cluster.kubeconfig])
    assert result.exit_code == 0, result.output
    assert router.current_weights(TARGET).canary == 0
    assert "abort sent to the running" in result.output
    stored = holder.load()
    assert stored is not None
    assert stored.state.phase is Phase.PROGRESSING  # the live holder applies it, not we
    commands = holder.save(stored.state, datetime.now(UTC))
    assert [c.name for c in commands] == ["abort"]


def test_abort_marks_a_run_whose_holder_is_gone(cluster: Cluster) -> None:
    router, holder = _stored_run(cluster, datetime.now(UTC) - timedelta(minutes=5))

    result = CliRunner().invoke(main, ["abort", *FLAGS, "--kubeconfig", cluster.kubeconfig])

    assert result.exit_code == 0, result.output
    assert router.current_weights(TARGET).canary == 0
    stored = holder.load()
    assert stored is not None
    assert (stored.state.phase, stored.state.aborted) == (Phase.ROLLED_BACK, True)
    assert "marked aborted at step 2" in result.output


def test_abort_without_a_stored_run_only_moves_traffic(cluster: Cluster) -> None:
    IstioRouter(KubeIstioStore(cluster.api)).set_canary_weight(TARGET, 30)
    result = CliRunner().invoke(main, ["abort", *FLAGS, "--kubeconfig", cluster.kubeconfig])
    assert result.exit_code == 0, result.output
    assert IstioRouter(KubeIstioStore(cluster.api)).current_weights(TARGET).canary == 0
    assert "marked aborted" not in result.output
