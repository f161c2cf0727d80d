"""Child processes of the sandbox: started on a free loopback port, awaited, always stopped.

Prometheus and the Cello apps are real programs; this module is the one place that knows how
to start one with its output in a log file (a pipe nobody reads would block it), wait until
it answers, and stop it: SIGTERM first so it shuts down cleanly, SIGKILL if it will not.
"""

import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import requests
import structlog

from rollout.errors import InfraError

log = structlog.get_logger(__name__)

STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; a tiny race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: `url` answers 2xx."""

    def check() -> bool:
        try:
            return requests.get(url, timeout=1).ok
        except requests.RequestException:
            return False

    return check


class StopOnExit:
    """A context manager whose exit calls `stop()`: every sandbox piece is stopped the same
    way whether a test uses `with` or calls `stop()` itself."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ManagedProcess(StopOnExit):
    """One child process with its log file; a context manager that always stops it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ):
        self.name = name
        self.log_path = log_path
        self._log_file = log_path.open("ab")
        self._proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
        )
        log.debug("process.started", name=name, pid=self._proc.pid)

    def running(self) -> bool:
        return self._proc.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout_s: float) -> None:
        """Poll `ready` until it holds; raise InfraError (and stop) if the process exits first
        or the timeout passes, quoting the end of its log so the cause is visible."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running():
                self.stop()
                raise InfraError(f"{self.name} exited early: {self.log_tail()}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise InfraError(f"{self.name} not ready after {timeout_s:.0f}s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; idempotent."""
        if self.running():
            self._proc.terminate()
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("process.killed", name=self.name, pid=self._proc.pid)
                self._proc.kill()
                self._proc.wait()
            log.debug("process.stopped", name=self.name, pid=self._proc.pid)
        self._log_file.close()

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the log, on one line, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"
