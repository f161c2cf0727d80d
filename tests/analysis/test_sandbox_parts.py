"""The sandbox's parts on their own, without Prometheus: the app's fault injection, the mesh
router's split and its Istio exposition. What they produce is what the analysis tests
measure, so it is checked here exactly."""

import collections

import pytest
import requests
from analysis_helpers import Sandbox
from prometheus_client.parser import text_string_to_metric_families

from rollout.sandbox.apps import AppVersion, CelloApp
from rollout.sandbox.mesh import ISTIO_DURATION_BUCKETS_MS, WeightedSplitter


def test_split_follows_the_weights_exactly_in_every_hundred() -> None:
    splitter = WeightedSplitter({"v1": 90, "v2": 10})

    for _ in range(3):
        picks = collections.Counter(splitter.pick() for _ in range(100))
        assert picks == {"v1": 90, "v2": 10}


def test_new_weights_apply_from_the_next_request() -> None:
    splitter = WeightedSplitter({"v1": 100, "v2": 0})
    assert {splitter.pick() for _ in range(10)} == {"v1"}

    splitter.set_weights({"v1": 0, "v2": 100})

    assert {splitter.pick() for _ in range(10)} == {"v2"}


@pytest.mark.prometheus
def test_exposition_has_istio_series_labels_and_buckets(sandbox: Sandbox) -> None:
    url = f"http://127.0.0.1:{sandbox.mesh.metrics_port}/metrics"
    text = requests.get(url, timeout=10).text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    assert set(families) == {"istio_requests", "istio_request_duration_milliseconds"}
    sample = families["istio_requests"].samples[0]
    assert sample.name == "istio_requests_total"
    labels = sample.labels
    assert labels["reporter"] == "destination"
    assert labels["destination_service"] == "cello-app.demo.svc.cluster.local"
    assert labels["destination_workload"] == f"cello-app-{labels['destination_version']}"
    buckets = [
        s.labels["le"]
        for s in families["istio_request_duration_milliseconds"].samples
        if s.name.endswith("_bucket") and {k: v for k, v in s.labels.items() if k != "le"} == labels
    ]
    expected = [str(int(b)) if float(b).is_integer() else str(b) for b in ISTIO_DURATION_BUCKETS_MS]
    assert buckets == [*expected, "+Inf"]


@pytest.mark.prometheus
def test_router_forwards_to_the_version_it_reports(sandbox: Sandbox) -> None:
    for _ in range(10):
        reply = requests.get(f"{sandbox.mesh.url}/api/items", timeout=10)
        assert reply.headers["X-Rollout-Destination"] == reply.json()["version"]


@pytest.mark.parametrize("rate", [0.2, 0.05])
def test_cello_app_fails_exactly_the_set_share_of_requests(rate: float) -> None:
    with CelloApp(AppVersion("vtest", error_rate=rate)) as app:
        codes = collections.Counter(
            requests.get(f"{app.url}/api/items", timeout=10).status_code for _ in range(200)
        )

    assert codes == {503: round(200 * rate), 200: round(200 * (1 - rate))}
