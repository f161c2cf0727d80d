"""The `rollout` command: parses arguments, calls the layers, maps errors to exit codes.

Commands live here only as thin wrappers; the work is done in the modules named for it.
"""

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from rollout import kube, log
from rollout.analysis import analyze as run_analysis
from rollout.analysis import report_table
from rollout.errors import ExitCode, InputError, RolloutError
from rollout.metrics.labels import format_duration
from rollout.metrics.prometheus import PrometheusReader
from rollout.metrics.providers import SAMPLE_TARGET, sample_queries
from rollout.policy import Document, RolloutPolicy, load_policy, parse_document, read_document
from rollout.subsets import resolve_subject
from rollout.target import Target
from rollout.traffic.istio import KubeIstioStore, router_for


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


def target_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The shared target and kube-access flags (DESIGN, "Command line")."""
    options = [
        click.option("-n", "--namespace", default="default", show_default=True),
        click.option("--virtual-service", "virtual_service", required=True),
        click.option("--route", default=None, help="HTTP route name (optional if unambiguous)."),
        click.option("--stable", required=True, help="Stable subset name."),
        click.option("--canary", required=True, help="Canary subset name."),
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


@main.command()
@target_options
@handle_errors
def abort(**flags: Any) -> None:
    """Put 100 % of the traffic on the stable subset now."""
    _move_traffic(0, **flags)


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
_VALIDATORS: dict[str, Callable[[Document], list[str]]] = {"RolloutPolicy": _describe_policy}


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


@main.command()
@target_options
@click.option("--policy", "policy_path", required=True, help="RolloutPolicy YAML file.")
@click.option(
    "--prometheus", "prometheus_url", required=True, envvar="PROMETHEUS_URL",
    help="Prometheus base URL (or PROMETHEUS_URL).",
)  # fmt: skip
@click.option("--stable-version", default=None, help="Stable subset's version label value.")
@click.option("--canary-version", default=None, help="Canary subset's version label value.")
@click.option(
    "--service", default=None,
    help="Service name in queries (default: DestinationRule host's short name; without a "
    "cluster, the VirtualService name).",
)  # fmt: skip
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
