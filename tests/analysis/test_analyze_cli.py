"""`rollout analyze` against a real Prometheus, for both metric sources (must-show 1).

The tests run the real CLI in a subprocess (in process only where the environment is the
point) against the shared sandbox (conftest.py), with the Cello policy (the apps' own series)
and with the Istio policy (the mesh router's series): the same traffic, measured twice.
"""

from pathlib import Path

import pytest
from analysis_helpers import (
    ERROR_RATE,
    POLICIES,
    AnalyzeCli,
    Sandbox,
    run_analyze,
    version_flags,
)
from click.testing import CliRunner

from rollout.cli import main
from rollout.sandbox.kubeapi import KubeApiServer, kubeconfig
from rollout.sandbox.prometheus import PrometheusServer

pytestmark = pytest.mark.prometheus

PROVIDERS = ["cello", "istio"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_faulty_canary_fails_on_its_measured_error_rate(analyze: AnalyzeCli, provider: str) -> None:
    run = analyze(provider, canary="v2")

    assert run.exit_code == 1, run.stderr
    assert run.report["verdict"] == "fail"
    errors = run.metric(f"{provider}-error-rate")
    assert errors["verdict"] == "fail"
    assert abs(errors["canary"] - ERROR_RATE) <= 0.2 * ERROR_RATE, errors
    assert errors["stable"] == 0.0
    assert errors["canary_requests"] >= 50
    # Only the error rate is at fault: the latency limit (5 s) holds for a 1.1 s canary.
    assert run.metric(f"{provider}-latency-p99")["verdict"] == "pass"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_healthy_canary_passes(analyze: AnalyzeCli, provider: str) -> None:
    run = analyze(provider, canary="v3")

    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.report["verdict"] == "pass"
    assert run.metric(f"{provider}-error-rate")["canary"] == 0.0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_canary_with_too_little_traffic_is_inconclusive(analyze: AnalyzeCli, provider: str) -> None:
    run = analyze(provider, canary="v4")

    assert run.exit_code == 3, run.stdout + run.stderr
    assert run.report["verdict"] == "inconclusive"
    errors = run.metric(f"{provider}-error-rate")
    assert errors["verdict"] == "inconclusive"
    assert 0 < errors["canary_requests"] < 50
    assert "fewer than the minimum 50" in errors["reason"]


def test_json_output_carries_the_exact_promql_and_time(analyze: AnalyzeCli) -> None:
    run = analyze("istio", canary="v2")

    queries = run.metric("istio-error-rate")["queries"]
    assert 'destination_version="v2"' in queries["canary"]["value"]
    assert 'destination_version="v1"' in queries["stable"]["value"]
    assert queries["canary"]["requests"].startswith("sum(increase(istio_requests_total{")
    assert run.report["at"].endswith("+00:00")
    assert run.report["window"] == "15s"


def test_text_output_is_a_table_with_the_reason_for_a_failure(analyze: AnalyzeCli) -> None:
    run = analyze("cello", canary="v2", output="text")

    assert run.exit_code == 1
    row = next(line for line in run.stdout.splitlines() if "cello-error-rate" in line)
    assert " fail " in row
    assert "max: canary 0.2" in row or "max: canary 0.1" in row
    assert "FAIL at " in run.stdout


def test_stopped_prometheus_exits_3_with_one_clear_line() -> None:
    with PrometheusServer([]) as prometheus:
        url = prometheus.url
    run = run_analyze(url, "istio", *version_flags("v2"))

    assert run.exit_code == 3
    assert run.stdout == ""
    assert run.stderr.strip() == f"error: Prometheus at {url} is unreachable: connection refused"


def test_queries_prometheus_cannot_answer_with_one_number_are_inconclusive(
    analyze: AnalyzeCli,
) -> None:
    run = analyze("promql-broken", canary="v3")

    assert run.exit_code == 3, run.stdout + run.stderr
    ambiguous = run.metric("one-series-per-path")
    assert ambiguous["verdict"] == "inconclusive"
    # One series per path: /, /api/items and /healthz (hit once by the readiness check).
    assert ambiguous["canary_error"] == "query returned 3 series where one was expected"
    rejected = run.metric("not-promql")
    assert rejected["verdict"] == "inconclusive"
    assert "parse error" in rejected["canary_error"]


@pytest.mark.kube
def test_versions_and_service_are_read_from_the_destination_rule(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """No version flags: the subsets' version labels come from the DestinationRule, read
    through the Kubernetes API stand-in, and decide what is measured."""
    cluster = KubeApiServer().start()
    try:
        cluster.create_namespaces(["demo"])
        cluster.load(Path(__file__).parent / "objects" / "cello-app.yaml")
        config = tmp_path / "kubeconfig"
        config.write_text(kubeconfig(cluster.url, "demo"))
        run = run_analyze(sandbox.prometheus.url, "istio", "--kubeconfig", str(config))
    finally:
        cluster.stop()

    assert run.exit_code == 1, run.stdout + run.stderr
    report = run.report
    assert (report["service"], report["stable_version"], report["canary_version"]) == (
        "cello-app",
        "v1",
        "v2",
    )
    assert abs(run.metric("istio-error-rate")["canary"] - ERROR_RATE) <= 0.2 * ERROR_RATE


def _analyze_in_process(env: dict[str, str | None]) -> tuple[int, str]:
    """`rollout analyze` without --prometheus, in process, with `env` set."""
    argv = ["analyze", "-n", "demo", "--virtual-service", "cello-app"]
    argv += ["--stable", "stable", "--canary", "canary", *version_flags("v3")]
    argv += ["--policy", str(POLICIES / "istio.yaml"), "--output", "json"]
    result = CliRunner().invoke(main, argv, env=env)
    return result.exit_code, result.output


def test_prometheus_url_can_come_from_the_environment(sandbox: Sandbox) -> None:
    code, output = _analyze_in_process({"PROMETHEUS_URL": sandbox.prometheus.url})

    assert code == 0, output
    assert '"verdict": "pass"' in output


def test_no_prometheus_url_is_invalid_input() -> None:
    code, output = _analyze_in_process({"PROMETHEUS_URL": None})

    assert code == 2
    assert "--prometheus" in output
