"""The `rollout` command: parses arguments, calls the layers, maps errors to exit codes.

Commands live here only as thin wrappers; the work is done in the modules named for it.
"""

import functools
import getpass
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from rollout import demo as sandbox_demo
from rollout import kube, log, report, standalone
from rollout.analysis import analyze as run_analysis
from rollout.analysis import report_table
from rollout.driver import exit_code
from rollout.engine import Phase
from rollout.errors import ExitCode, InputError, RolloutError
from rollout.metrics.labels import format_duration
from rollout.metrics.prometheus import PrometheusReader
from rollout.metrics.providers import SAMPLE_TARGET, sample_queries
from rollout.notify import config as notify_config
from rollout.policy import Document, RolloutPolicy, load_policy, parse_document, read_document
from rollout.resources import CanaryRolloutManifest, TargetSpec
from rollout.rollout_client import RolloutClient, describe, verdict
from rollout.sandbox import runner as sandbox_runner
from rollout.subsets import resolve_subject
from rollout.target import Target, check_dns1123_subdomain
from rollout.traffic.istio import KubeIstioStore, router_for
from rollout.view import make_view


def fail(message: str, code: ExitCode) -> None:
    """Print one line to stderr and exit with `code`."""
    click.echo(f"error: {message}", err=True)
    sys.exit(int(code))


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn RolloutError into one message and its exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RolloutError as exc:
            fail(str(exc), exc.exit_code)

    return wrapper


def target_options(func: Callable[..., Any], required: bool = True) -> Callable[..., Any]:
    """The shared target and kube-access flags (DESIGN, "Command line"); optional for the
    commands that also take a CanaryRollout NAME instead."""
    options = [
        click.option("-n", "--namespace", default="default", show_default=True),
        click.option("--virtual-service", "virtual_service", required=required),
        click.option("--route", default=None, help="HTTP route name (optional if unambiguous)."),
        click.option("--stable", required=required, help="Stable subset name."),
        click.option("--canary", required=required, help="Canary subset name."),
        click.option("--destination-rule", "destination_rule", default=None),
        click.option("--kubeconfig", default=None, envvar="KUBECONFIG"),
        click.option("--context", default=None),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_target(
    namespace: str,
    virtual_service: str,
    route: str | None,
    stable: str,
    canary: str,
    destination_rule: str | None,
) -> Target:
    """A validated Target from the shared flags."""
    return Target(
        namespace=namespace,
        virtual_service=virtual_service,
        route=route,
        stable=stable,
        canary=canary,
        destination_rule=destination_rule,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cello-rollout")
def main() -> None:
    """Progressive delivery for Kubernetes + Istio services (Cello first)."""
    log.configure()


def _move_traffic(weight: int, kubeconfig: str | None, context: str | None, **flags: Any) -> None:
    """Send `weight` % to the canary of the target the flags name; print before and after."""
    target = build_target(**flags)
    router = router_for(kube.api_client(kubeconfig, context))
    click.echo(str(router.set_canary_weight(target, weight)))


@main.command("set-weight")
@target_options
@click.argument("weight", metavar="W", type=click.IntRange(0, 100))
@handle_errors
def set_weight(weight: int, **flags: Any) -> None:
    """Move W % of the traffic (an integer, 0-100) to the canary and the rest to stable."""
    _move_traffic(weight, **flags)


def name_or_target_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """`NAME` (a CanaryRollout) or the target flags (a standalone run)."""
    func = target_options(func, required=False)
    return click.argument("name", required=False)(func)


def target_unless_named(name: str | None, flags: dict[str, Any]) -> Target | None:
    """The standalone target the flags name, or None when NAME names a CanaryRollout."""
    given = [
        f"--{k.replace('_', '-')}" for k in ("virtual_service", "stable", "canary") if flags[k]
    ]
    if name is not None:
        if given:
            raise InputError(f"give a CanaryRollout NAME or {', '.join(given)}, not both")
        check_dns1123_subdomain("NAME", name)
        return None
    if len(given) < 3:
        raise InputError("give a CanaryRollout NAME, or --virtual-service, --stable and --canary")
    return build_target(**flags)


@main.command()
@name_or_target_options
@handle_errors
def abort(name: str | None, kubeconfig: str | None, context: str | None, **flags: Any) -> None:
    """Put 100 % of the traffic on the stable subset now, and abort a stored run.

    With NAME: asks the controller to abort that CanaryRollout. With the target flags: a
    `rollout run` driving the target applies the abort within a few seconds and exits 4.
    """
    target = target_unless_named(name, flags)
    api = kube.api_client(kubeconfig, context)
    if target is None:
        _send(api, flags["namespace"], str(name), "abort")
        return
    stored = standalone.send_request(api, target, "abort", by=getpass.getuser())
    click.echo(str(router_for(api).set_canary_weight(target, 0)))
    if stored is not None and stored.aborted:
        click.echo(f"stored rollout marked aborted at step {stored.step + 1}")
    elif stored is not None:
        click.echo("abort sent to the running `rollout run`; it applies it within seconds")


@main.command()
@name_or_target_options
@handle_errors
def approve(name: str | None, kubeconfig: str | None, context: str | None, **flags: Any) -> None:
    """Approve the gate a run is waiting at (confirm-step / confirm-promotion): of
    CanaryRollout NAME, or of the standalone run on the target flags' VirtualService."""
    target = target_unless_named(name, flags)
    api = kube.api_client(kubeconfig, context)
    if target is None:
        status = RolloutClient(api, flags["namespace"]).get(str(name)).status
        if status is None or status.awaiting is None:
            raise InputError(f"CanaryRollout {flags['namespace']}/{name} waits at no gate")
        _send(api, flags["namespace"], str(name), f"approve:{status.step}")
        return
    stored = standalone.send_request(api, target, "approve", by=getpass.getuser())
    if stored is not None:
        click.echo(f"approved {stored.awaiting} at step {stored.step + 1} ({stored.weight}%)")


def _describe_policy(doc: Document) -> list[str]:
    """Validate a RolloutPolicy document and describe it with every query it runs."""
    policy = parse_document(doc, RolloutPolicy)
    spec = policy.spec
    weights = ", ".join(map(str, spec.weights))
    target = SAMPLE_TARGET
    lines = [
        f"{doc.path}: RolloutPolicy {policy.metadata.name}: valid",
        f"  steps {weights}; interval {format_duration(spec.interval)}; window "
        f"{format_duration(spec.window)}; minRequests {spec.min_requests}; failureLimit "
        f"{spec.failure_limit}; {spec.inconclusive.limit} inconclusive in a row -> "
        f"{spec.inconclusive.action}",
        f"  PromQL rendered for a SAMPLE target (namespace={target['namespace']}, "
        f"service={target['service']}, stable version={target['stable_version']}, "
        f"canary version={target['canary_version']}); real values come from the target:",
    ]
    for name, queries in sample_queries(spec):
        lines.append(f"  {name}:")
        for role, query in queries.items():
            lines.append(f"    {role} value:    {query.value}")
            lines.append(f"    {role} requests: {query.requests}")
    return lines


# What `validate` knows how to check, by the document's `kind`.
def _describe_rollout(doc: Document) -> list[str]:
    """Validate a CanaryRollout manifest, and its inline policy as a RolloutPolicy."""
    rollout = parse_document(doc, CanaryRolloutManifest)
    target = rollout.spec.target
    lines = [
        f"{doc.path}: CanaryRollout {rollout.metadata.name}: valid",
        f"  target: VirtualService {target.virtual_service}, {target.stable} -> {target.canary}",
    ]
    if rollout.spec.policy_ref is not None:
        return [*lines, f"  policy: RolloutPolicy {rollout.spec.policy_ref.name}"]
    return lines


_VALIDATORS: dict[str, Callable[[Document], list[str]]] = {
    "RolloutPolicy": _describe_policy,
    "CanaryRollout": _describe_rollout,
}


def _validate_file(path: str) -> list[str]:
    """Validate one file by its kind; raises InputError naming file:line and field."""
    doc = read_document(path)
    kind = doc.kind
    validator = _VALIDATORS.get(kind) if isinstance(kind, str) else None
    if validator is None:
        known = ", ".join(_VALIDATORS)
        raise doc.error(("kind",), f"unknown kind {kind!r} (expected {known})")
    return validator(doc)


@main.command()
@click.argument("files", metavar="FILE...", nargs=-1, required=True)
def validate(files: tuple[str, ...]) -> None:
    """Validate policy files and print the PromQL each metric runs.

    Every bad file gets one line (file:line: field: reason); exit 2 if any file is bad.
    """
    bad = False
    for path in files:
        try:
            click.echo("\n".join(_validate_file(path)))
        except InputError as exc:
            click.echo(f"error: {exc}", err=True)
            bad = True
    if bad:
        sys.exit(int(ExitCode.INVALID_INPUT))


def _analysis_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The policy, Prometheus and version-label flags shared by `analyze` and `run`."""
    options = [
        click.option("--policy", "policy_path", required=True, help="RolloutPolicy YAML file."),
        click.option(
            "--prometheus",
            "prometheus_url",
            required=True,
            envvar="PROMETHEUS_URL",
            help="Prometheus base URL (or PROMETHEUS_URL).",
        ),
        click.option("--stable-version", default=None, help="Stable subset's version label."),
        click.option("--canary-version", default=None, help="Canary subset's version label."),
        click.option(
            "--service",
            default=None,
            help="Service name in queries (default: DestinationRule host's short name; "
            "without a cluster, the VirtualService name).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@target_options
@_analysis_options
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def analyze(
    policy_path: str,
    prometheus_url: str,
    stable_version: str | None,
    canary_version: str | None,
    service: str | None,
    output: str,
    kubeconfig: str | None,
    context: str | None,
    **flags: Any,
) -> None:
    """Run one analysis now (no traffic change): exit 0 pass, 1 fail, 3 inconclusive.

    Version label values come from the DestinationRule's subsets unless both
    --stable-version and --canary-version are given (then no cluster is needed).
    """
    policy = load_policy(policy_path)
    subject = resolve_subject(
        build_target(**flags),
        lambda: KubeIstioStore(kube.api_client(kubeconfig, context)),
        stable_version=stable_version,
        canary_version=canary_version,
        service=service,
    )
    report = run_analysis(policy, subject, PrometheusReader(prometheus_url))
    if output == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        console = Console()
        # Not a terminal (a pipe, CI logs): wide enough that each metric stays on one line.
        (console if console.is_terminal else Console(width=200)).print(report_table(report))
    sys.exit(int(report.exit_code))


@main.group()
def sandbox() -> None:
    """The local sandbox: Kubernetes API stand-in, Cello apps v1/v2, mesh, Prometheus, load."""


@sandbox.command("up")
@click.option("--dir", "directory", default=".sandbox", show_default=True, type=click.Path())
@click.option(
    "--v2-error-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1),
    help="Share of v2's API requests answered 503.",
)  # fmt: skip
@click.option(
    "--v2-latency-ms", default=0.0, show_default=True, type=click.FloatRange(0),
    help="Milliseconds added to each of v2's API requests.",
)  # fmt: skip
@click.option(
    "--rps", default=40.0, show_default=True, type=click.FloatRange(0, min_open=True),
    help="Requests per second the load sends through the mesh.",
)  # fmt: skip
@click.option(
    "--components", default=None,
    help=f"Comma-separated, of: {', '.join(sandbox_runner.COMPONENTS)} (default: all).",
)  # fmt: skip
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Kube API port (0: any).")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Namespace to create (repeatable; default: demo and default). The first is the "
    "kubeconfig's and where preloaded objects without one go.",
)
@click.option(
    "-f", "--filename", "files", multiple=True, type=click.Path(),
    help="YAML file of objects to create at start (repeatable; default: the cello-app "
    "VirtualService and DestinationRule in namespace demo).",
)  # fmt: skip
@handle_errors
def sandbox_up(
    directory: str, v2_error_rate: float, v2_latency_ms: float, rps: float,
    components: str | None, port: int, namespaces: tuple[str, ...], files: tuple[str, ...],
) -> None:  # fmt: skip
    """Start the sandbox in the background; returns once Prometheus has scraped everything.

    Writes D/kubeconfig and D/env (KUBECONFIG, PROMETHEUS_URL, MESH_URL; shell-sourceable).
    """
    config = sandbox_runner.SandboxConfig(
        directory=Path(directory),
        kube_port=port,
        namespaces=namespaces,
        files=tuple(Path(f) for f in files),
        v2_error_rate=v2_error_rate,
        v2_latency_ms=v2_latency_ms,
        rps=rps,
    )
    selected = sandbox_runner.parse_components(components)
    for line in sandbox_runner.up(sandbox_runner.with_defaults(config), selected):
        click.echo(line)


@sandbox.command("down")
@click.option("--dir", "directory", default=".sandbox", show_default=True, type=click.Path())
@handle_errors
def sandbox_down(directory: str) -> None:
    """Stop everything `sandbox up` started in D (harmless when nothing runs)."""
    stopped = sandbox_runner.down(Path(directory))
    click.echo("\n".join(stopped) if stopped else f"nothing running in {directory}")


@main.command()
@click.option(
    "--faulty", type=click.Choice(["errors", "latency"]), default=None,
    help="errors: v2 answers 30 % 5xx; latency: v2 is 300 ms slower.",
)  # fmt: skip
@click.option("--keep", is_flag=True, help="Leave the sandbox running afterwards.")
@click.option("--report", "report_path", default=None, help="Write the record to FILE.md/.json.")
@handle_errors
def demo(faulty: str | None, keep: bool, report_path: str | None) -> None:
    """Sandbox up, a canary of v2 with policies/demo.yaml, the verdict, sandbox down.

    Exits as `rollout run` would: 0 promoted, 1 rolled back, 3 could not complete.
    """
    log.configure(level=logging.WARNING)  # the view and the summary tell the story
    if report_path is not None:
        report.check_path(report_path)
    for signum in (signal.SIGINT, signal.SIGTERM):  # unwind, so the sandbox is stopped
        signal.signal(signum, signal.default_int_handler)
    try:
        result = sandbox_demo.run(
            faulty, click.echo, lambda driver: make_view(driver, to_stderr=False), keep=keep
        )
    except KeyboardInterrupt:
        fail("interrupted; the sandbox was stopped", ExitCode.INCOMPLETE)
        return
    if report_path is not None:
        report.write(report_path, result.record)
    sys.exit(int(result.exit_code))


@main.command()
@target_options
@_analysis_options
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--report", "report_path", default=None, help="Write the record to FILE.md/.json.")
@click.option("--skip-analysis", is_flag=True, help="Emergency path: shift to 100 % now.")
@click.option(
    "--notify", "notify_path", default=None,
    help="Notifications file for this rollout (sinks added to the policy's).",
)  # fmt: skip
@handle_errors
def run(
    policy_path: str,
    prometheus_url: str,
    stable_version: str | None,
    canary_version: str | None,
    service: str | None,
    output: str,
    report_path: str | None,
    skip_analysis: bool,
    notify_path: str | None,
    kubeconfig: str | None,
    context: str | None,
    **flags: Any,
) -> None:
    """Drive one canary to the end: exit 0 promoted, 1 rolled back, 3 could not complete,
    4 aborted or paused. Re-running after an interruption resumes at the stored step."""
    policy = load_policy(policy_path)
    if report_path is not None:
        report.check_path(report_path)
    notifications = notify_config.load_file(notify_path) if notify_path else None
    options = standalone.RunOptions(
        prometheus_url, skip_analysis, stable_version, canary_version, service, notifications
    )
    driver = standalone.prepare(
        policy, build_target(**flags), kube.api_client(kubeconfig, context), options
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    show = make_view(driver, to_stderr=output == "json")
    try:
        state = standalone.drive(driver, skip_analysis=skip_analysis, stop=stop, on_change=show)
    finally:
        show.close()
    data = report.record(driver)
    if report_path is not None:
        report.write(report_path, data)
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    if not state.terminal and state.phase is not Phase.PAUSED:
        fail(
            f"interrupted at {state.phase} step {state.step + 1} ({state.weight}%); run again "
            "to resume, or `rollout abort` to send traffic to stable",
            ExitCode.INCOMPLETE,
        )
    sys.exit(int(exit_code(state)))


@main.command()
@name_or_target_options
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@handle_errors
def status(
    name: str | None, output: str, kubeconfig: str | None, context: str | None, **flags: Any
) -> None:
    """Show a CanaryRollout's status (NAME), or the stored state of a standalone run on the
    target's VirtualService (target flags)."""
    target = target_unless_named(name, flags)
    api = kube.api_client(kubeconfig, context)
    if target is None:
        rollout = RolloutClient(api, flags["namespace"]).get(str(name))
        click.echo(describe(rollout, output))
        return
    stored = standalone.stored_run(api, target)
    if stored is None:
        vs = f"{target.namespace}/{target.virtual_service}"
        fail(f"no rollout is stored on VirtualService {vs}", ExitCode.INVALID_INPUT)
        return
    if output == "json":
        click.echo(stored.model_dump_json(indent=2))
        return
    state = stored.state
    click.echo(
        f"{target}: {state.phase}, step {state.step + 1}, canary {state.weight}%, "
        f"failed checks {state.failed_checks}, held by {stored.holder} (renewed "
        f"{stored.renewed:%Y-%m-%d %H:%M:%S} UTC)\n  reason: {state.reason}"
    )
    for t in state.history:
        click.echo(f"  {t.at:%H:%M:%S} {t.phase:<11} step {t.step + 1} {t.weight:>3}%  {t.reason}")


# ---- CanaryRollout commands (the controller does the work) -------------------------------


def _kube_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("-n", "--namespace", default="default", show_default=True),
            click.option("--kubeconfig", default=None, envvar="KUBECONFIG"),
            click.option("--context", default=None),
        ]
    ):
        func = option(func)
    return func


def _send(api: Any, namespace: str, name: str, command: str) -> None:
    """Hand `command` to the controller as a request on CanaryRollout `name`."""
    rid = RolloutClient(api, namespace).request(name, command)
    click.echo(f"{command} requested for CanaryRollout {namespace}/{name} (request {rid})")


def _request_command(command: str, doc: str) -> None:
    """Register `rollout COMMAND NAME`, which sends one request to the controller."""

    @_kube_options
    @click.argument("name")
    @handle_errors
    def send(name: str, namespace: str, kubeconfig: str | None, context: str | None) -> None:
        check_dns1123_subdomain("NAME", name)
        _send(kube.api_client(kubeconfig, context), namespace, name, command)

    send.__doc__ = doc
    main.command(command)(send)


_request_command("promote", "Skip the remaining steps of CanaryRollout NAME: 100 % to canary.")
_request_command("retry", "Run the finished release of CanaryRollout NAME again, same spec.")


@main.command()
@_kube_options
@click.argument("name")
@handle_errors
def pause(name: str, namespace: str, kubeconfig: str | None, context: str | None) -> None:
    """Hold CanaryRollout NAME at its current weight (sets spec.paused)."""
    check_dns1123_subdomain("NAME", name)
    RolloutClient(kube.api_client(kubeconfig, context), namespace).set_paused(name, True)
    click.echo(f"CanaryRollout {namespace}/{name}: spec.paused set")


@main.command()
@_kube_options
@click.argument("name")
@handle_errors
def resume(name: str, namespace: str, kubeconfig: str | None, context: str | None) -> None:
    """Continue CanaryRollout NAME: clears spec.paused, and resumes a rollout that paused
    itself (inconclusive checks)."""
    check_dns1123_subdomain("NAME", name)
    rollouts = RolloutClient(kube.api_client(kubeconfig, context), namespace)
    if rollouts.get(name).spec.paused:
        rollouts.set_paused(name, False)
        click.echo(f"CanaryRollout {namespace}/{name}: spec.paused cleared")
    else:
        _send(kube.api_client(kubeconfig, context), namespace, name, "resume")


@main.command()
@click.argument("name")
@target_options
@click.option("--policy", "policy_path", required=True, help="RolloutPolicy YAML file.")
@click.option("--wait", is_flag=True, help="Wait for the verdict and exit with it.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to --wait.")
@handle_errors
def start(
    name: str,
    policy_path: str,
    wait: bool,
    timeout: float,
    kubeconfig: str | None,
    context: str | None,
    **flags: Any,
) -> None:
    """Create or update CanaryRollout NAME for the controller; with --wait, exit 0 promoted,
    1 rolled back, 3 failed, 4 aborted or paused."""
    check_dns1123_subdomain("NAME", name)
    policy = load_policy(policy_path)
    target = build_target(**flags)
    spec = TargetSpec(
        virtual_service=target.virtual_service, route=target.route,
        destination_rule=target.destination_rule, stable=target.stable, canary=target.canary,
    )  # fmt: skip
    rollouts = RolloutClient(kube.api_client(kubeconfig, context), target.namespace)
    request = rollouts.apply(name, spec, policy)
    click.echo(f"CanaryRollout {target.namespace}/{name}: {target.stable} -> {target.canary}")
    if not wait:
        return
    rollout = rollouts.wait(name, request, timeout)
    click.echo(describe(rollout, "text"))
    sys.exit(int(verdict(rollout)))


@main.command()
@click.option("-n", "--namespace", default=None, help="Watch one namespace (default: all).")
@click.option("--prometheus", "prometheus_url", required=True, envvar="PROMETHEUS_URL")
@click.option("--lease-namespace", default="cello-rollout", envvar="POD_NAMESPACE",
              show_default=True)  # fmt: skip
@click.option("--lease-name", default="cello-rollout-controller", show_default=True)
@click.option("--lease-duration", default=15.0, show_default=True, help="Seconds.")
@click.option("--address", default="0.0.0.0", show_default=True, help="HTTP listen address.")
@click.option("--port", default=8080, show_default=True, help="/healthz, /readyz, /metrics.")
@click.option("--kubeconfig", default=None, envvar="KUBECONFIG")
@click.option("--context", default=None)
@handle_errors
def controller(
    namespace: str | None, prometheus_url: str, lease_namespace: str, lease_name: str,
    lease_duration: float, address: str, port: int, kubeconfig: str | None, context: str | None,
) -> None:  # fmt: skip
    """Run the in-cluster controller: drive every CanaryRollout; stops cleanly on SIGTERM."""
    from rollout.controller import Config, Controller

    config = Config(
        prometheus_url=prometheus_url, namespace=namespace, lease_namespace=lease_namespace,
        lease_name=lease_name, lease_seconds=lease_duration, address=address, port=port,
    )  # fmt: skip
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        Controller(kube.api_client(kubeconfig, context), config).run(stop)
    except OSError as exc:
        fail(f"cannot serve on {address}:{port}: {exc.strerror or exc}", ExitCode.INCOMPLETE)
