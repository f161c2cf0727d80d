"""The decision record of a run, as JSON (`--output json`, `--report x.json`) or Markdown.

It is the evidence behind a verdict: every transition, and every check with its time,
weight, metrics, values, request counts, limits, verdicts and PromQL.
"""

import json
from pathlib import Path
from typing import Any

from rollout.driver import Driver, exit_code
from rollout.errors import InputError


def record(driver: Driver) -> dict[str, Any]:
    """The whole decision record of `driver`'s run as JSON-safe data."""
    state = driver.state
    return {
        "target": {
            "namespace": driver.target.namespace,
            "virtualService": driver.target.virtual_service,
            "route": driver.target.route,
            "stable": driver.target.stable,
            "canary": driver.target.canary,
        },
        "policy": driver.policy.metadata.name,
        "weights": list(driver.plan.weights),
        "phase": str(state.phase),
        "aborted": state.aborted,
        "reason": state.reason,
        "exitCode": int(exit_code(state)),
        "transitions": [t.model_dump(mode="json") for t in state.history],
        "checks": [check.to_dict() for check in driver.record.checks],
    }


def markdown(data: dict[str, Any]) -> str:
    """A human-readable report of `record()`'s data."""
    target = data["target"]
    lines = [
        f"# Rollout {target['namespace']}/{target['virtualService']}: {data['phase']}",
        "",
        f"{target['stable']} -> {target['canary']}, policy `{data['policy']}`, steps "
        f"{', '.join(map(str, data['weights']))}. Reason: {data['reason']}",
        "",
        "## Transitions",
        "",
        "| time | phase | step | canary weight | reason |",
        "|---|---|---|---|---|",
    ]
    for t in data["transitions"]:
        lines.append(f"| {t['at']} | {t['phase']} | {t['step']} | {t['weight']} | {t['reason']} |")
    lines += ["", "## Checks", ""]
    for check in data["checks"]:
        lines += [
            f"### {check['kind']} check at {check['at']} (step {check['step']}, "
            f"weight {check['weight']}): {check['verdict']}",
            "",
            "| metric | canary | stable | requests (c/s) | verdict | reason | canary PromQL |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in check["metrics"]:
            lines.append(
                f"| {m['metric']} | {m['canary']} | {m['stable']} | {m['canary_requests']} / "
                f"{m['stable_requests']} | {m['verdict']} | {m['reason']} | "
                f"`{m['canary_query']}` |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def check_path(path: str) -> None:
    """Refuse a report path we could not write, before the run changes anything."""
    if Path(path).suffix.lower() not in (".md", ".json"):
        raise InputError(f"--report {path}: use a .md or .json file name")
    if not Path(path).resolve().parent.is_dir():
        raise InputError(f"--report {path}: no such directory")


def write(path: str, data: dict[str, Any]) -> None:
    """Write the record to `path`: Markdown for .md, JSON for .json."""
    check_path(path)
    suffix = Path(path).suffix.lower()
    text = markdown(data) if suffix == ".md" else json.dumps(data, indent=2) + "\n"
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"--report {path}: cannot write: {exc.strerror}") from exc
