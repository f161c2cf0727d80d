"""The sandbox's mesh: a proxy that splits real requests between versions by weight and
publishes Istio's standard request metrics about what it saw.

In a cluster, each destination pod's Envoy sidecar reports `istio_requests_total` and
`istio_request_duration_milliseconds` with `reporter="destination"` and Istio's standard
labels. Here one in-process proxy plays the ingress route *and* those sidecars: it picks a
version for each request by weight (as a VirtualService would), forwards it to that
version's app, and records the code the app answered and the time it took, labelled exactly
as Istio labels them. Metrics are served on their own port, as Envoy serves them apart from
the traffic port, so a proxied app's own `/metrics` stays reachable through the router.

Run as a process (`python -m rollout.sandbox.mesh`, what `rollout sandbox up` does), it
follows the live VirtualService: a weight written to the cluster routes requests within
FOLLOW_INTERVAL_S, as Istio's proxies pick up a new route.
"""

import argparse
import http.client
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import structlog
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from rollout import kube
from rollout import log as logging_setup
from rollout.errors import InputError, RolloutError
from rollout.sandbox.process import StopOnExit, free_port
from rollout.sandbox.prometheus import ScrapeTarget
from rollout.subsets import read_subject
from rollout.target import Target
from rollout.traffic.istio import (
    VIRTUAL_SERVICE,
    IstioStore,
    KubeIstioStore,
    find_route,
    read_split,
)

log = structlog.get_logger(__name__)

# Istio's default buckets for istio_request_duration_milliseconds.
ISTIO_DURATION_BUCKETS_MS = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)  # fmt: skip
UPSTREAM_TIMEOUT_S = 30.0
# The mesh's standard labels, in the order Istio documents them.
ISTIO_LABELS = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)
# Traffic enters from outside the mesh through the ingress gateway.
_SOURCE = {
    "source_workload": "istio-ingressgateway",
    "source_workload_namespace": "istio-system",
    "source_principal": "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway",
    "source_app": "istio-ingressgateway",
    "source_version": "unknown",
    "source_canonical_service": "istio-ingressgateway",
    "source_canonical_revision": "latest",
    "source_cluster": "Kubernetes",
}


def _le(bound: float) -> str:
    """A bucket bound as Envoy prints it: "0.5", "1", "3600000" (never "3.6e+06")."""
    return str(int(bound)) if float(bound).is_integer() else str(bound)


class IstioMetrics(Collector):
    """Istio's request counter and duration histogram for one service, as a collector.

    A custom collector rather than prometheus_client's Counter/Histogram so the exposition
    has exactly Istio's series (no `_created` series that Istio never exports).
    """

    def __init__(self, namespace: str, service: str):
        self._namespace = namespace
        self._service = service
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, ...], int] = {}
        self._buckets: dict[tuple[str, ...], list[int]] = {}
        self._sums: dict[tuple[str, ...], float] = {}

    def labels(self, version: str, response_code: int, response_flags: str) -> tuple[str, ...]:
        """The label values for one request to `version`, in ISTIO_LABELS order."""
        ns, svc = self._namespace, self._service
        values = _SOURCE | {
            "reporter": "destination",
            "destination_workload": f"{svc}-{version}",
            "destination_workload_namespace": ns,
            "destination_principal": f"spiffe://cluster.local/ns/{ns}/sa/{svc}",
            "destination_app": svc,
            "destination_version": version,
            "destination_service": f"{svc}.{ns}.svc.cluster.local",
            "destination_service_name": svc,
            "destination_service_namespace": ns,
            "destination_canonical_service": svc,
            "destination_canonical_revision": version,
            "destination_cluster": "Kubernetes",
            "request_protocol": "http",
            "response_code": str(response_code),
            "grpc_response_status": "",
            "response_flags": response_flags,
            "connection_security_policy": "mutual_tls",
        }
        return tuple(values[name] for name in ISTIO_LABELS)

    def record(
        self, version: str, response_code: int, duration_ms: float, response_flags: str = "-"
    ) -> None:
        """Count one request and observe its duration."""
        key = self.labels(version, response_code, response_flags)
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            buckets = self._buckets.setdefault(key, [0] * len(ISTIO_DURATION_BUCKETS_MS))
            for i, bound in enumerate(ISTIO_DURATION_BUCKETS_MS):
                if duration_ms <= bound:
                    buckets[i] += 1
            self._sums[key] = self._sums.get(key, 0.0) + duration_ms

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily("istio_requests", "Total requests.", labels=ISTIO_LABELS)
        durations = HistogramMetricFamily(
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds.",
            labels=ISTIO_LABELS,
        )
        with self._lock:
            for key, count in self._requests.items():
                requests.add_metric(key, count)
                cumulative = [
                    (_le(b), n)
                    for b, n in zip(ISTIO_DURATION_BUCKETS_MS, self._buckets[key], strict=True)
                ]
                durations.add_metric(key, [*cumulative, ("+Inf", count)], self._sums[key])
        return [requests, durations]


class WeightedSplitter:
    """Picks a version per request: in every run of sum(weights) requests each version gets
    exactly its weight, spread evenly (smooth weighted round-robin, as in nginx).

    Deterministic, so 10 % to the canary means one request in ten, not ten percent on
    average: the request counts behind a measurement are predictable.
    """

    def __init__(self, weights: Mapping[str, int]):
        self._lock = threading.Lock()
        self._weights: dict[str, int] = {}
        self._current: dict[str, int] = {}
        self.set_weights(weights)

    def set_weights(self, weights: Mapping[str, int]) -> None:
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise InputError(f"mesh weights must be >= 0 with a positive sum, got {weights}")
        with self._lock:
            self._weights = dict(weights)
            self._current = dict.fromkeys(weights, 0)

    @property
    def weights(self) -> dict[str, int]:
        with self._lock:
            return dict(self._weights)

    def pick(self) -> str:
        with self._lock:
            for version, weight in self._weights.items():
                self._current[version] += weight
            chosen = max(self._current, key=self._current.__getitem__)
            self._current[chosen] -= sum(self._weights.values())
            return chosen


@dataclass(frozen=True)
class Destination:
    """One version of the service and where its app listens."""

    version: str
    url: str  # http://host:port


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    router: "MeshRouter"


class _ProxyHandler(BaseHTTPRequestHandler):
    """Forwards one request to the version the router picks and records the outcome."""

    protocol_version = "HTTP/1.1"  # keep-alive towards clients

    def do_GET(self) -> None:
        self._forward()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _forward(self) -> None:
        router = cast(_ProxyServer, self.server).router
        version = router.splitter.pick()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        start = time.perf_counter()
        try:
            status, content_type, payload = router.call(version, self.command, self.path, body)
            flags = "-"
        except OSError as exc:
            status, content_type, payload = 503, "text/plain", f"upstream: {exc}".encode()
            flags = "UF"  # Envoy's "upstream connection failure"
        router.metrics.record(version, status, (time.perf_counter() - start) * 1000, flags)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Rollout-Destination", version)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        """Silence per-request access lines; the metrics are the record."""


class MeshRouter(StopOnExit):
    """The proxy on 127.0.0.1:`port`, its Istio metrics on `metrics_port`; stop() ends both."""

    def __init__(
        self,
        namespace: str,
        service: str,
        destinations: Sequence[Destination],
        weights: Mapping[str, int],
    ):
        self.namespace = namespace
        self.service = service
        self._upstreams = {d.version: urlsplit(d.url) for d in destinations}
        unknown = set(weights) - set(self._upstreams)
        if unknown:
            raise InputError(f"mesh weights name unknown versions: {sorted(unknown)}")
        self.splitter = WeightedSplitter(weights)
        self.metrics = IstioMetrics(namespace, service)
        registry = CollectorRegistry()
        registry.register(self.metrics)
        self.metrics_port = free_port()
        self._metrics_server, _ = start_http_server(self.metrics_port, "127.0.0.1", registry)
        self._proxy = _ProxyServer(("127.0.0.1", 0), _ProxyHandler)
        self._proxy.router = self
        self.port: int = self._proxy.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._proxy.serve_forever, name="mesh-proxy", daemon=True).start()
        log.info(
            "mesh.started", url=self.url, metrics_port=self.metrics_port, weights=dict(weights)
        )

    def set_weights(self, weights: Mapping[str, int]) -> None:
        """Route by new weights from the next request on (the VirtualService changed)."""
        self.splitter.set_weights(weights)
        log.info("mesh.weights", weights=dict(weights))

    def call(
        self, version: str, method: str, path: str, body: bytes | None
    ) -> tuple[int, str, bytes]:
        """Send one request to `version`'s app: (status, content type, body)."""
        upstream = self._upstreams[version]
        conn = http.client.HTTPConnection(
            upstream.hostname or "127.0.0.1", upstream.port, timeout=UPSTREAM_TIMEOUT_S
        )
        try:
            conn.request(method, path, body=body)
            response = conn.getresponse()
            payload = response.read()
            return response.status, response.getheader("Content-Type", ""), payload
        finally:
            conn.close()

    def scrape_target(self) -> ScrapeTarget:
        """Prometheus scrapes the mesh metrics as it would the sidecars' merged endpoint."""
        return ScrapeTarget("istio-mesh", f"127.0.0.1:{self.metrics_port}")

    def stop(self) -> None:
        self._proxy.shutdown()
        self._proxy.server_close()
        self._metrics_server.shutdown()
        self._metrics_server.server_close()
        log.info("mesh.stopped", url=self.url)


# ---- As a process (`rollout sandbox up`): following the live VirtualService ----------------

# How often the mesh re-reads the VirtualService: a written weight takes effect within this.
FOLLOW_INTERVAL_S = 0.2


def _upstream(text: str) -> tuple[str, str]:
    """`v1=http://127.0.0.1:8001` -> (subset, url)."""
    subset, sep, url = text.partition("=")
    if not sep or not subset or not url.startswith("http://"):
        raise argparse.ArgumentTypeError(f"{text!r} is not SUBSET=http://HOST:PORT")
    return subset, url


class VirtualServiceFollower:
    """Reads the managed route's split and hands it to the router whenever it changes.

    Polling, not a watch: one GET every FOLLOW_INTERVAL_S bounds the lag without a watch's
    reconnects and resourceVersion bookkeeping, and costs the local stand-in nothing.
    """

    def __init__(self, store: IstioStore, target: Target, versions: Mapping[str, str]):
        self._store = store
        self._target = target
        self._versions = versions  # subset -> its version label value

    def weights(self) -> dict[str, int]:
        """The live weights, keyed by version (as the router and Istio's labels are)."""
        target = self._target
        vs = self._store.get(VIRTUAL_SERVICE, target.namespace, target.virtual_service)
        split = read_split(vs, find_route(vs, target), target)
        return {
            self._versions[target.stable]: split.stable,
            self._versions[target.canary]: split.canary,
        }

    def follow(self, router: MeshRouter, stop: threading.Event) -> None:
        """Until `stop`: apply each change of the weights; an unreadable VS keeps the last."""
        current = router.splitter.weights
        while not stop.wait(FOLLOW_INTERVAL_S):
            try:
                weights = self.weights()
            except RolloutError as exc:
                log.warning("mesh.follow_failed", error=str(exc))
                continue
            if weights != current:
                router.set_weights(weights)
                current = weights


def main(argv: list[str] | None = None) -> None:
    """Serve the mesh for one VirtualService until SIGTERM (the `sandbox up` child process).

    Writes `--port-file` ("PROXY_PORT METRICS_PORT") once serving at the VS's current split.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--virtual-service", required=True)
    parser.add_argument("--stable", required=True)
    parser.add_argument("--canary", required=True)
    parser.add_argument("--upstream", type=_upstream, action="append", required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    logging_setup.configure(json=True)
    target = Target(
        namespace=args.namespace,
        virtual_service=args.virtual_service,
        stable=args.stable,
        canary=args.canary,
    )
    store = KubeIstioStore(kube.api_client(args.kubeconfig))
    try:
        subject = read_subject(store, target)
        versions = {target.stable: subject.stable_version, target.canary: subject.canary_version}
        follower = VirtualServiceFollower(store, target, versions)
        destinations = [Destination(versions[s], url) for s, url in args.upstream]
        router = MeshRouter(subject.namespace, subject.service, destinations, follower.weights())
    except RolloutError as exc:
        log.error("mesh.start_failed", error=str(exc))
        sys.exit(int(exc.exit_code))
    args.port_file.write_text(f"{router.port} {router.metrics_port}\n")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    follower.follow(router, stop)
    router.stop()


if __name__ == "__main__":
    main()
