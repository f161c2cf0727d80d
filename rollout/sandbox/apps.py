"""The example Cello app (`examples/cello-app/app.py`) running as one version of a service.

Each version is its own process on a free loopback port, with its fault settings passed in
the environment (`VERSION`, `ERROR_RATE`, `DELAY_MS`), so v1 can be healthy while v2 answers
5xx or is slow. `scrape_target()` gives Prometheus the labels a pod of that version would
carry (namespace, app, version), which is how the `cello` provider tells versions apart.
"""

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import structlog

from rollout.errors import InfraError
from rollout.sandbox.process import ManagedProcess, StopOnExit, free_port, http_ok
from rollout.sandbox.prometheus import ScrapeTarget

log = structlog.get_logger(__name__)

# The repository's example app; the package sits next to `examples/` in a source checkout.
DEFAULT_APP_PATH = Path(__file__).resolve().parents[2] / "examples" / "cello-app" / "app.py"
APP_NAME = "cello-app"
READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class AppVersion:
    """One version of the example app and the faults it injects."""

    version: str
    error_rate: float = 0.0
    delay_ms: float = 0.0
    namespace: str = "demo"
    app: str = APP_NAME


def app_command(
    spec: AppVersion, port: int, app_path: Path = DEFAULT_APP_PATH
) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run `spec` on 127.0.0.1:`port` (also for runners
    that start detached processes)."""
    if not app_path.is_file():
        raise InfraError(f"Cello example app not found at {app_path}")
    env = {
        **os.environ,
        "VERSION": spec.version,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "ERROR_RATE": str(spec.error_rate),
        "DELAY_MS": str(spec.delay_ms),
    }
    return [sys.executable, str(app_path)], env


class CelloApp(StopOnExit):
    """A running version of the example Cello app on 127.0.0.1:`port`; stop() ends it."""

    def __init__(
        self,
        spec: AppVersion,
        app_path: Path = DEFAULT_APP_PATH,
        log_dir: Path | None = None,
    ):
        self.spec = spec
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv, env = app_command(spec, self.port, app_path)
        self._owned_log_dir = log_dir is None
        self._log_dir = log_dir or Path(tempfile.mkdtemp(prefix=f"rollout-app-{spec.version}-"))
        self._process = ManagedProcess(
            f"cello-app {spec.version}",
            argv,
            self._log_dir / f"cello-app-{spec.version}-{self.port}.log",
            env,
        )
        self._process.wait_ready(http_ok(f"{self.url}/healthz"), READY_TIMEOUT_S)
        log.info(
            "cello_app.started",
            version=spec.version,
            url=self.url,
            error_rate=spec.error_rate,
            delay_ms=spec.delay_ms,
        )

    def scrape_target(self) -> ScrapeTarget:
        """How Prometheus should scrape this version: labelled like its pod would be."""
        labels = {
            "namespace": self.spec.namespace,
            "app": self.spec.app,
            "version": self.spec.version,
        }
        return ScrapeTarget("cello-app", f"127.0.0.1:{self.port}", labels)

    def stop(self) -> None:
        """Stop the process; its log goes too unless the caller chose where logs live."""
        self._process.stop()
        if self._owned_log_dir:
            shutil.rmtree(self._log_dir, ignore_errors=True)
        log.info("cello_app.stopped", version=self.spec.version)
