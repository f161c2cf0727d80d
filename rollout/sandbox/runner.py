"""`rollout sandbox up` / `down`: start the sandbox's components as detached processes in a
directory, and stop whatever that directory says is running.

`up` must return once the sandbox serves, leaving it running after the command exits, so
each component is its own session (`start_new_session`), logs to `D/<name>.log`, and is
recorded in `D/<name>.pid`. `down` reads every pid file in D, whatever `up` started it,
so later components need nothing of their own to be stopped; a pid file whose process is
gone (or is not ours any more) is only removed.

Components are a registry: each one starts from the shared `SandboxConfig` and returns the
lines to print. More (Prometheus, apps, mesh router, load) are added as entries.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from rollout.errors import ExitCode, InfraError, InputError
from rollout.sandbox.kubeapi import kubeconfig
from rollout.target import check_dns1123_label

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
# A process we started runs `python -m rollout.sandbox...`: a recycled pid will not.
_OUR_COMMAND = b"rollout.sandbox"


@dataclass(frozen=True)
class SandboxConfig:
    """What `sandbox up` was asked for; shared by all components."""

    directory: Path
    kube_port: int = 0  # 0: any free port
    namespaces: Sequence[str] = ("default",)
    files: Sequence[Path] = field(default_factory=tuple)


@dataclass(frozen=True)
class Component:
    name: str
    start: Callable[[SandboxConfig], list[str]]


def start_detached(
    config: SandboxConfig, name: str, argv: Sequence[str]
) -> "subprocess.Popen[bytes]":
    """Start `argv` in its own session, output to D/<name>.log, pid in D/<name>.pid."""
    with (config.directory / f"{name}.log").open("ab") as log_file:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (config.directory / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc


def wait_for(
    name: str, proc: "subprocess.Popen[bytes]", ready: Callable[[], bool], log_path: Path
) -> None:
    """Poll `ready` until it holds. If the process exits first, quote its log: exit code 2
    (it refused its input, e.g. a preload file) is an InputError, anything else InfraError."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            error = InputError if code == ExitCode.INVALID_INPUT else InfraError
            raise error(f"{name} exited at start: {_log_tail(log_path)}")
        if ready():
            return
        time.sleep(0.05)
    raise InfraError(f"{name} not ready after {READY_TIMEOUT_S:.0f}s: {_log_tail(log_path)}")


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return "(no log)"
    return " | ".join(text.splitlines()[-lines:]) or "(empty log)"


def start_kube(config: SandboxConfig) -> list[str]:
    """The Kubernetes API stand-in; writes D/kubeconfig and D/env once it answers."""
    directory = config.directory
    port_file = directory / "kube.port"
    port_file.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "rollout.sandbox.kubeapi", "--port", str(config.kube_port)]
    argv += ["--port-file", str(port_file)]
    argv += [arg for ns in config.namespaces for arg in ("--namespace", ns)]
    argv += [arg for path in config.files for arg in ("--filename", str(path.resolve()))]
    proc = start_detached(config, "kube", argv)
    wait_for("kube", proc, lambda: _answers(port_file), directory / "kube.log")
    url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    (directory / "kubeconfig").write_text(kubeconfig(url, config.namespaces[0]))
    kubeconfig_path = (directory / "kubeconfig").resolve()
    (directory / "env").write_text(f"KUBECONFIG={kubeconfig_path}\n")
    return [
        f"kube: Kubernetes API stand-in at {url} (pid {proc.pid}, log {directory / 'kube.log'})",
        f"kube: namespaces {', '.join(config.namespaces)}; KUBECONFIG={kubeconfig_path}",
    ]


def _answers(port_file: Path) -> bool:
    """The port file is written and /version answers (the server writes it once bound)."""
    try:
        port = port_file.read_text().strip()
        return port.isdigit() and requests.get(f"http://127.0.0.1:{port}/version", timeout=1).ok
    except (OSError, requests.RequestException):
        return False


COMPONENTS: dict[str, Component] = {"kube": Component("kube", start_kube)}


def parse_components(text: str | None) -> list[Component]:
    """`kube,prometheus` -> components in start order; None or empty: all of them."""
    if not text:
        return list(COMPONENTS.values())
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in COMPONENTS]
    if unknown:
        known = ", ".join(COMPONENTS)
        raise InputError(f"--components: unknown {', '.join(unknown)} (known: {known})")
    return [component for name, component in COMPONENTS.items() if name in names]


def up(config: SandboxConfig, components: Sequence[Component]) -> list[str]:
    """Start `components` in order; on any failure stop what started, then raise."""
    for namespace in config.namespaces:
        check_dns1123_label("--namespace", namespace)
    for path in config.files:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    config.directory.mkdir(parents=True, exist_ok=True)
    if running(config.directory):
        raise InputError(f"a sandbox already runs in {config.directory}; `sandbox down` first")
    lines: list[str] = []
    try:
        for component in components:
            lines += component.start(config)
    except BaseException:
        down(config.directory)
        raise
    stop_command = f"rollout sandbox down --dir {config.directory}"
    lines.append(f"env: {config.directory / 'env'} (stop with: {stop_command})")
    return lines


def running(directory: Path) -> list[str]:
    """Names of the components whose recorded process still runs."""
    return [pid_file.stem for pid_file in _pid_files(directory) if _our_pid(pid_file)]


def down(directory: Path) -> list[str]:
    """Stop every process recorded in `directory` and remove its pid file; what was stopped."""
    stopped = []
    for pid_file in _pid_files(directory):
        pid = _our_pid(pid_file)
        if pid is not None:
            stop(pid)
            stopped.append(f"{pid_file.stem}: stopped (pid {pid})")
        pid_file.unlink(missing_ok=True)
    return stopped


def _pid_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.pid")) if directory.is_dir() else []


def _our_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process is alive and still one of ours."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if alive(pid) and _OUR_COMMAND in cmdline else None


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its parent) is not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def stop(pid: int) -> None:
    """SIGTERM the process group, SIGKILL it after STOP_TIMEOUT_S; InfraError if it lives."""
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not alive(pid):
                return
            time.sleep(0.05)
    raise InfraError(f"process {pid} did not stop")
