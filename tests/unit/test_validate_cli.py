"""`rollout validate`: shipped policies pass; each kind of bad input is exit 2 and one line
naming file:line and the field, never a traceback (issue 2, must-show 3)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLLOUT = Path(sys.executable).parent / "rollout"

HEAD = """\
apiVersion: rollout.cello.dev/v1alpha1
kind: RolloutPolicy
metadata:
  name: bad
spec:
"""
METRIC = """\
  metrics:
    - name: errors
      provider: istio
      kind: errorRate
      max: 0.1
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    return subprocess.run(
        [str(ROLLOUT), "validate", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("name", ["default", "strict", "demo"])
def test_shipped_policies_validate_and_print_promql(name: str) -> None:
    result = run(str(ROOT / "policies" / f"{name}.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "valid" in result.stdout
    assert "SAMPLE target" in result.stdout
    assert 'destination_version="v2"' in result.stdout  # canary, istio
    assert 'destination_version="v1"' in result.stdout  # stable, istio
    assert "histogram_quantile(0.9" in result.stdout  # p99 or p90
    assert "cello_http_request_duration_seconds_bucket" in result.stdout
    assert "_sum" not in result.stdout


# (case, file text, expected "file:line: field" after the file name, words in the reason)
BAD = [
    ("malformed", HEAD + "  steps: [10, 20\n  interval: 1m\n", ":7: malformed YAML", ""),
    ("malformed-tab", HEAD + "\tinterval: 1m\n", ":6: malformed YAML", "'\\t'"),
    ("unknown-field", HEAD + "  intervall: 1m\n" + METRIC, ":6: spec.intervall", "unknown"),
    (
        "unknown-nested-field",
        HEAD + METRIC + "      maxErrors: 3\n",
        ":11: spec.metrics[0].maxErrors",
        "unknown",
    ),
    ("weight-high", HEAD + "  steps: [10, 120, 100]\n" + METRIC, ":6: spec.steps[1]", "1-100"),
    ("weight-zero", HEAD + "  stepWeight: 0\n" + METRIC, ":6: spec.stepWeight", "1-100"),
    (
        "not-increasing",
        HEAD + "  steps:\n    - 10\n    - 50\n    - 30\n    - 100\n" + METRIC,
        ":9: spec.steps[2]",
        "greater",
    ),
    ("last-not-100", HEAD + "  steps: [10, 50]\n" + METRIC, ":6: spec.steps[1]", "100"),
    ("duration-zero", HEAD + "  interval: 0s\n" + METRIC, ":6: spec.interval", "positive"),
    ("duration-bare", HEAD + "  window: 30\n" + METRIC, ":6: spec.window", "duration"),
    (
        "duration-guard",
        HEAD + "  guard:\n    interval: -5s\n    metrics: [{metric: errors, max: 1}]\n" + METRIC,
        ":7: spec.guard.interval",
        "duration",
    ),
    (
        "quantile",
        HEAD + METRIC.replace("errorRate", "latency") + "      quantile: 1.5\n",
        ":11: spec.metrics[0].quantile",
        "(0, 1)",
    ),
    (
        "provider",
        HEAD + METRIC.replace("istio", "datadog"),
        ":8: spec.metrics[0].provider",
        "unknown provider",
    ),
    (
        "template-variable",
        HEAD
        + "  metrics:\n    - name: x\n      provider: promql\n      max: 1\n"
        + '      query: sum(rate(x{ns="{{ namespace }}",v="{{ subset }}"}[{{ window }}]))\n'
        + "      requestsQuery: sum(increase(x[{{ window }}]))\n",
        ":10: spec.metrics[0].query",
        "{{ subset }}",
    ),
    (
        "guard-unknown-metric",
        HEAD + "  guard:\n    metrics:\n      - metric: nope\n        max: 1\n" + METRIC,
        ":8: spec.guard.metrics[0].metric",
        "nope",
    ),
    ("api-version", HEAD.replace("v1alpha1", "v9") + METRIC, ":1: apiVersion", ""),
    ("no-metrics", HEAD + "  interval: 1m\n", ":5: spec.metrics", "missing"),
]


@pytest.mark.parametrize(("case", "text", "where", "why"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_located_line(
    tmp_path: Path, case: str, text: str, where: str, why: str
) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    result = run(str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {path}{where}"), lines[0]
    assert why in lines[0]
    assert result.stdout == ""


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    result = run(str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"error: {path}: cannot read: No such file or directory"]


def test_unknown_kind_points_at_kind(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\n")
    result = run(str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {path}:2: kind: unknown kind 'ConfigMap' (expected RolloutPolicy, CanaryRollout)"
    ]


def test_every_bad_file_of_several_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + "  steps: [50, 10, 100]\n" + METRIC)
    good = ROOT / "policies" / "demo.yaml"
    result = run(str(good), str(bad), str(tmp_path / "gone.yaml"))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 2
    assert "RolloutPolicy demo: valid" in result.stdout
