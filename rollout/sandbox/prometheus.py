"""A real Prometheus server (Debian's `prometheus` binary) for the sandbox and the tests.

It scrapes the given targets every second, so a 15 s analysis window already holds ~15
samples per series. Each target carries static labels (`namespace`, `version`, `app`, ...)
that Prometheus attaches to every series it scrapes from it, as Kubernetes service discovery
relabeling would attach pod labels in a cluster: that is how the `cello` provider tells the
versions of a Cello app apart. Prometheus also adds `job` and `instance` itself.
"""

import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import structlog
import yaml

from rollout.errors import InfraError
from rollout.sandbox.process import ManagedProcess, StopOnExit, free_port, http_ok

log = structlog.get_logger(__name__)

SCRAPE_INTERVAL = "1s"
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ScrapeTarget:
    """One endpoint to scrape, and the labels Prometheus puts on all of its series."""

    job: str
    address: str  # host:port
    labels: Mapping[str, str] = field(default_factory=dict)
    metrics_path: str = "/metrics"


def scrape_config(targets: Sequence[ScrapeTarget], interval: str = SCRAPE_INTERVAL) -> str:
    """prometheus.yml for `targets`: one scrape job per job name, one static config each."""
    jobs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for target in targets:
        static = {"targets": [target.address], "labels": dict(target.labels)}
        jobs.setdefault((target.job, target.metrics_path), []).append(static)
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": path,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": statics,
            }
            for (job, path), statics in jobs.items()
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def prometheus_binary() -> str:
    """The `prometheus` executable (on PATH or Debian's /usr/bin/prometheus)."""
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None
    )
    if found is None:
        raise InfraError(
            "prometheus binary not found; run scripts/install-system-deps.sh (apt: prometheus)"
        )
    return found


def prepare(directory: Path, targets: Sequence[ScrapeTarget], port: int) -> list[str]:
    """Write `directory`/prometheus.yml for `targets`; the command that serves it on `port`
    with its storage in `directory`/data. Separate from PrometheusServer so that a runner
    that starts detached processes (`rollout sandbox up`) can start the same server."""
    config_path = directory / "prometheus.yml"
    config_path.write_text(scrape_config(targets))
    return [
        prometheus_binary(),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]


def wait_targets_up(url: str, timeout_s: float = 30.0) -> None:
    """Block until every target of the Prometheus at `url` has been scraped successfully at
    least once (also for a server another process started)."""
    deadline = time.monotonic() + timeout_s
    health: list[str] = []
    while time.monotonic() < deadline:
        reply = requests.get(f"{url}/api/v1/targets", timeout=5).json()
        health = [t["health"] for t in reply["data"]["activeTargets"]]
        if health and all(h == "up" for h in health):
            return
        time.sleep(0.2)
    raise InfraError(f"prometheus targets not all up after {timeout_s:.0f}s: {health}")


class PrometheusServer(StopOnExit):
    """A running Prometheus on 127.0.0.1:`port` with its own storage; stop() removes both.

    Use as a context manager, or call stop() in a finally block.
    """

    def __init__(self, targets: Sequence[ScrapeTarget], workdir: Path | None = None):
        self._owned_dir = workdir is None
        self.dir = workdir or Path(tempfile.mkdtemp(prefix="rollout-prometheus-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = prepare(self.dir, targets, self.port)
        self._process = ManagedProcess("prometheus", argv, self.dir / "prometheus.log")
        try:
            self._process.wait_ready(http_ok(f"{self.url}/-/ready"), READY_TIMEOUT_S)
        finally:
            if not self._process.running():
                self._remove_dir()
        log.info("prometheus.started", url=self.url, targets=len(targets), dir=str(self.dir))

    def wait_targets_up(self, timeout_s: float = 30.0) -> None:
        """Block until every configured target has been scraped successfully at least once."""
        wait_targets_up(self.url, timeout_s)

    def stop(self) -> None:
        """Stop the server and delete its storage (if this object created the directory)."""
        self._process.stop()
        self._remove_dir()
        log.info("prometheus.stopped", url=self.url)

    def _remove_dir(self) -> None:
        if self._owned_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
