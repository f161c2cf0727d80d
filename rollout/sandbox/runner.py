"""`rollout sandbox up` / `down`: start the sandbox's components as detached processes in a
directory, and stop whatever that directory says is running.

`up` must return once the sandbox serves, leaving it running after the command exits, so
each component is its own session (`start_new_session`), logs to `D/<name>.log`, and is
recorded in `D/<name>.pid`. `down` reads every pid file in D, whatever `up` started it,
so later components need nothing of their own to be stopped; a pid file whose process is
gone (or is not ours any more) is only removed.

Components are a registry, started in its order: each starts from the shared
`SandboxConfig`, records where it serves in `D/endpoints.json` (for the components after
it, `rollout demo` and the tests) and returns the lines to print:
- kube: the Kubernetes API stand-in, preloaded with namespace `demo` and the cello-app
  VirtualService and DestinationRule (all traffic on v1);
- apps: the example Cello app as v1 and v2 (v2 with the error rate and latency asked for);
- mesh: the router splitting requests by the live VirtualService weights;
- prometheus: Debian's Prometheus scraping the apps and the mesh every second;
- load: a steady request stream through the mesh, ending by itself after `load_duration_s`.

Every process is started with `ROLLOUT_SANDBOX_DIR=<D>` in its environment: that is how
`down` knows a pid is still the one it started (Prometheus and the apps are not Python
modules of ours, so their command line cannot tell).
"""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

from rollout.errors import ExitCode, InfraError, InputError
from rollout.pids import alive
from rollout.sandbox import prometheus
from rollout.sandbox.apps import AppVersion, app_command
from rollout.sandbox.kubeapi import kubeconfig
from rollout.sandbox.process import free_port, http_ok
from rollout.target import check_dns1123_label

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
MARKER = "ROLLOUT_SANDBOX_DIR"
# The preloaded objects: the Cello guide's VirtualService and DestinationRule for cello-app.
PRELOAD = Path(__file__).resolve().parents[1] / "data" / "sandbox-cello-app.yaml"
NAMESPACE = "demo"
VIRTUAL_SERVICE = "cello-app"
STABLE, CANARY = "v1", "v2"
ENDPOINTS = "endpoints.json"


@dataclass(frozen=True)
class SandboxConfig:
    """What `sandbox up` was asked for; shared by all components."""

    directory: Path
    kube_port: int = 0  # 0: any free port
    namespaces: Sequence[str] = (NAMESPACE, "default")
    files: Sequence[Path] = (PRELOAD,)
    v2_error_rate: float = 0.0
    v2_latency_ms: float = 0.0
    rps: float = 40.0
    load_duration_s: float = 3600.0


def with_defaults(config: SandboxConfig) -> SandboxConfig:
    """`config` as `sandbox up`'s flags mean it: no -f preloads the cello-app objects, and
    their namespace `demo` is then always created; no -n is `demo` and `default`."""
    files = tuple(config.files) or (PRELOAD,)
    namespaces = tuple(config.namespaces) or (NAMESPACE, "default")
    if PRELOAD in files and NAMESPACE not in namespaces:
        namespaces = (*namespaces, NAMESPACE)
    return dataclasses.replace(config, namespaces=namespaces, files=files)


@dataclass(frozen=True)
class Component:
    name: str
    start: Callable[[SandboxConfig], list[str]]
    needs: tuple[str, ...] = field(default_factory=tuple)


def start_detached(
    config: SandboxConfig,
    name: str,
    argv: Sequence[str],
    env: dict[str, str] | None = None,
) -> "subprocess.Popen[bytes]":
    """Start `argv` in its own session, output to D/<name>.log, pid in D/<name>.pid."""
    marked = {**(os.environ if env is None else env), MARKER: _marker(config.directory)}
    with (config.directory / f"{name}.log").open("ab") as log_file:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=marked,
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
    record(directory, "kube", url)
    export(directory, "KUBECONFIG", str(kubeconfig_path))
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


def start_apps(config: SandboxConfig) -> list[str]:
    """The example Cello app as v1 (healthy) and v2 (the faults asked for)."""
    versions = (
        AppVersion(STABLE),
        AppVersion(CANARY, error_rate=config.v2_error_rate, delay_ms=config.v2_latency_ms),
    )
    started = []
    for spec in versions:  # both start at once: each takes a second or two to import
        port = free_port()
        argv, env = app_command(spec, port)
        proc = start_detached(config, f"app-{spec.version}", argv, env)
        started.append((spec, proc, f"http://127.0.0.1:{port}"))
    lines = []
    for spec, proc, url in started:
        name = f"app-{spec.version}"
        wait_for(name, proc, http_ok(f"{url}/healthz"), config.directory / f"{name}.log")
        record(config.directory, name, url)
        faults = f"error rate {spec.error_rate:g}, +{spec.delay_ms:g} ms"
        lines.append(f"apps: cello-app {spec.version} at {url} ({faults}; pid {proc.pid})")
    return lines


def start_mesh(config: SandboxConfig) -> list[str]:
    """The mesh router following the live VirtualService demo/cello-app."""
    directory = config.directory
    port_file = directory / "mesh.port"
    port_file.unlink(missing_ok=True)
    seen = endpoints(directory)
    argv = [
        sys.executable,
        "-m",
        "rollout.sandbox.mesh",
        "--kubeconfig",
        str(directory / "kubeconfig"),
    ]
    argv += ["--namespace", NAMESPACE, "--virtual-service", VIRTUAL_SERVICE]
    argv += ["--stable", STABLE, "--canary", CANARY, "--port-file", str(port_file)]
    argv += [arg for v in (STABLE, CANARY) for arg in ("--upstream", f"{v}={seen[f'app-{v}']}")]
    proc = start_detached(config, "mesh", argv)
    wait_for("mesh", proc, lambda: len(_words(port_file)) == 2, directory / "mesh.log")
    proxy_port, metrics_port = _words(port_file)
    url = f"http://127.0.0.1:{proxy_port}"
    record(directory, "mesh", url)
    record(directory, "mesh-metrics", f"http://127.0.0.1:{metrics_port}")
    export(directory, "MESH_URL", url)
    return [
        f"mesh: router at {url} following VirtualService {NAMESPACE}/{VIRTUAL_SERVICE}, "
        f"Istio metrics on port {metrics_port} (pid {proc.pid})"
    ]


def start_prometheus(config: SandboxConfig) -> list[str]:
    """Prometheus scraping every app and the mesh every second; returns once each target
    has been scraped (so an analysis right after `up` finds series)."""
    directory = config.directory / "prometheus"
    directory.mkdir(exist_ok=True)
    seen = endpoints(config.directory)
    targets = [
        prometheus.ScrapeTarget(
            "cello-app",
            _address(url),
            {"namespace": NAMESPACE, "app": VIRTUAL_SERVICE, "version": name.removeprefix("app-")},
        )
        for name, url in seen.items()
        if name.startswith("app-")
    ]
    if "mesh-metrics" in seen:
        targets.append(prometheus.ScrapeTarget("istio-mesh", _address(seen["mesh-metrics"])))
    port = free_port()
    proc = start_detached(config, "prometheus", prometheus.prepare(directory, targets, port))
    url = f"http://127.0.0.1:{port}"
    log = config.directory / "prometheus.log"
    wait_for("prometheus", proc, http_ok(f"{url}/-/ready"), log)
    if targets:
        prometheus.wait_targets_up(url, READY_TIMEOUT_S)
    record(config.directory, "prometheus", url)
    export(config.directory, "PROMETHEUS_URL", url)
    return [
        f"prometheus: {url} scraping {len(targets)} targets every "
        f"{prometheus.SCRAPE_INTERVAL} (pid {proc.pid})"
    ]


def start_load(config: SandboxConfig) -> list[str]:
    """A steady stream through the mesh, bounded in time."""
    url = endpoints(config.directory)["mesh"]
    argv = [sys.executable, "-m", "rollout.sandbox.load", "--url", url]
    argv += ["--rps", str(config.rps), "--duration", str(config.load_duration_s)]
    proc = start_detached(config, "load", argv)
    return [
        f"load: {config.rps:g} requests/s through the mesh for at most "
        f"{config.load_duration_s:g}s (pid {proc.pid})"
    ]


def _words(path: Path) -> list[str]:
    """The words of a file another process writes (none while it is absent or empty)."""
    try:
        return path.read_text().split()
    except OSError:
        return []


def _address(url: str) -> str:
    return url.removeprefix("http://")


def record(directory: Path, name: str, url: str) -> None:
    """Remember where component `name` serves (D/endpoints.json)."""
    (directory / ENDPOINTS).write_text(json.dumps(endpoints(directory) | {name: url}))


def endpoints(directory: Path) -> dict[str, str]:
    """Where each running component serves: kube, app-v1, app-v2, mesh, prometheus..."""
    try:
        found: dict[str, str] = json.loads((directory / ENDPOINTS).read_text())
    except (OSError, ValueError):
        return {}
    return found


def export(directory: Path, name: str, value: str) -> None:
    """Add `name=value` to D/env, the shell-sourceable settings of the sandbox."""
    with (directory / "env").open("a") as env:
        env.write(f"{name}={value}\n")


COMPONENTS: dict[str, Component] = {
    "kube": Component("kube", start_kube),
    "apps": Component("apps", start_apps),
    "mesh": Component("mesh", start_mesh, needs=("kube", "apps")),
    "prometheus": Component("prometheus", start_prometheus),
    "load": Component("load", start_load, needs=("mesh",)),
}


def parse_components(text: str | None) -> list[Component]:
    """`kube,prometheus` -> components in start order; None or empty: all of them."""
    if not text:
        return list(COMPONENTS.values())
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in COMPONENTS]
    if unknown:
        known = ", ".join(COMPONENTS)
        raise InputError(f"--components: unknown {', '.join(unknown)} (known: {known})")
    for name in names:
        missing = [need for need in COMPONENTS[name].needs if need not in names]
        if missing:
            raise InputError(f"--components: {name} needs {', '.join(missing)}")
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
    for stale in ("env", ENDPOINTS):
        (config.directory / stale).unlink(missing_ok=True)
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
    shutil.rmtree(directory / "prometheus", ignore_errors=True)
    (directory / ENDPOINTS).unlink(missing_ok=True)
    return stopped


def _pid_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.pid")) if directory.is_dir() else []


def _our_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process is alive and still one of ours."""
    try:
        pid = int(pid_file.read_text().strip())
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    mark = f"{MARKER}={_marker(pid_file.parent)}".encode()
    return pid if alive(pid) and mark in environ else None


def _marker(directory: Path) -> str:
    return str(directory.resolve())


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
