"""Must-show 3: URL tokens and signing keys never show in logs, errors, status or records.

The end-to-end test runs the real `rollout run` (emergency path, so no Prometheus is
needed) against the Kubernetes API stand-in with Slack, webhook and Kubernetes Events
sinks whose secrets come from the environment, one of them failing, and searches every
output for the secrets.
"""

import base64
import hashlib
import hmac
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import notify_helpers
import pytest
from kubernetes import client
from notify_helpers import TARGET
from notify_receivers import receiver
from pydantic import SecretStr
from standin import Cluster

from rollout.errors import InputError
from rollout.notify.notifier import standalone
from rollout.policy import Notifications, SecretSource, load_policy
from rollout.secrets import SecretReader

SLACK_TOKEN = "T0SECRET/B0SECRET/xoxSlackToken123"
HOOK_TOKEN = "hook-path-token-456"
SIGNING_KEY = "signing-key-789-do-not-print"
SECRETS = (SLACK_TOKEN, HOOK_TOKEN, SIGNING_KEY, "xoxSlackToken123")
ROLLOUT = Path(sys.executable).with_name("rollout")
FLAGS = ["-n", "demo", "--virtual-service", "cello-app", "--stable", "v1", "--canary", "v2"]

POLICY = """\
apiVersion: rollout.cello.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: notified}
spec:
  steps: [50, 100]
  metrics:
    - {name: error-rate, provider: istio, kind: errorRate, max: 0.05}
  notifications:
    sinks:
      - name: team-slack
        type: slack
        url: {env: TEST_SLACK_URL}
        retry: {attempts: 2, backoff: 100ms}
      - name: events
        type: kubernetesEvents
"""
PER_ROLLOUT = """\
sinks:
  - name: deploy-hook
    type: webhook
    url: {env: TEST_HOOK_URL}
    signingKey: {env: TEST_HOOK_KEY}
    events: [promoted, rolledBack]
"""


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def rollout_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROLLOUT), *args], env=os.environ | env, capture_output=True, text=True, timeout=60
    )


def test_a_whole_rollout_run_prints_no_secret_anywhere(cluster: Cluster, tmp_path: Path) -> None:
    policy, per_rollout = tmp_path / "policy.yaml", tmp_path / "notify.yaml"
    policy.write_text(POLICY)
    per_rollout.write_text(PER_ROLLOUT)
    with (
        receiver(status=500, path=f"/services/{SLACK_TOKEN}") as slack,
        receiver(path=f"/{HOOK_TOKEN}") as hook,
    ):
        env = {
            "TEST_SLACK_URL": slack.url,
            "TEST_HOOK_URL": hook.url,
            "TEST_HOOK_KEY": SIGNING_KEY,
        }
        run = rollout_cli(
            "run", *FLAGS, "--kubeconfig", cluster.kubeconfig, "--policy", str(policy),
            "--prometheus", "http://127.0.0.1:9", "--skip-analysis", "--notify",
            str(per_rollout), "--output", "json", env=env,
        )  # fmt: skip
        status = rollout_cli("status", *FLAGS, "--kubeconfig", cluster.kubeconfig, env=env)
        status_json = rollout_cli(
            "status", *FLAGS, "--kubeconfig", cluster.kubeconfig, "--output", "json", env=env
        )
    assert run.returncode == 0, run.stderr
    # Delivered before the process exited: the webhook got `promoted` (its only event
    # here, signed), Slack was tried twice for each of started and promoted, then given up.
    assert [json.loads(r.body)["type"] for r in hook.requests] == ["dev.cello.rollout.promoted"]
    body, signature = hook.requests[0].body, hook.requests[0].headers["X-Rollout-Signature"]
    assert signature == "sha256=" + hmac.new(SIGNING_KEY.encode(), body, hashlib.sha256).hexdigest()
    assert slack.attempts == 4
    assert '"event": "notify.failed"' in run.stderr and "HTTP 500" in run.stderr
    events = client.CoreV1Api(cluster.api).list_namespaced_event("demo").items
    assert sorted(e.reason for e in events) == ["Promoted", "Started"]
    assert {e.involved_object.kind for e in events} == {"VirtualService"}
    for output in (run.stdout, run.stderr, status.stdout, status.stderr, status_json.stdout):
        assert_no_secret(output)
    assert_no_secret(json.dumps(client.ApiClient().sanitize_for_serialization(events)))


def test_a_missing_secret_stops_the_run_before_anything_changes(
    cluster: Cluster, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    run = rollout_cli(
        "run", *FLAGS, "--kubeconfig", cluster.kubeconfig, "--policy", str(policy),
        "--prometheus", "http://127.0.0.1:9", "--skip-analysis", env={"TEST_SLACK_URL": ""},
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "environment variable TEST_SLACK_URL is not set or empty" in run.stderr
    status = rollout_cli("status", *FLAGS, "--kubeconfig", cluster.kubeconfig, env={})
    assert "no rollout is stored" in status.stderr  # the lock was never taken


def test_a_url_written_into_the_policy_is_refused_without_echoing_it(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("{env: TEST_SLACK_URL}", f"https://x.test/{SLACK_TOKEN}"))
    with pytest.raises(InputError) as refused:
        load_policy(policy)
    assert "never write a URL or key here" in str(refused.value)
    assert ":12: spec.notifications.sinks[0].url" in str(refused.value)
    assert_no_secret(str(refused.value))
    validate = rollout_cli("validate", str(policy), env={})
    assert validate.returncode == 2
    assert_no_secret(validate.stdout + validate.stderr)


def test_resolved_sinks_and_bad_values_never_show_the_secret(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, logs: io.StringIO
) -> None:
    monkeypatch.setenv("TEST_SLACK_URL", f"https://hooks.example/{SLACK_TOKEN}")
    monkeypatch.setenv("TEST_HOOK_URL", f"https://hooks.example/{HOOK_TOKEN}")
    monkeypatch.setenv("TEST_HOOK_KEY", SIGNING_KEY)
    sinks = Notifications.model_validate(
        {
            "sinks": [
                {"name": "a", "type": "slack", "url": {"env": "TEST_SLACK_URL"}},
                {
                    "name": "b",
                    "type": "webhook",
                    "url": {"env": "TEST_HOOK_URL"},
                    "signingKey": {"env": "TEST_HOOK_KEY"},
                },
            ]
        }
    )
    policy = notify_helpers.policy()  # no sinks of its own: all come from the rollout's
    notifier = standalone(policy, sinks, TARGET, cluster.api)
    assert notifier is not None
    assert_no_secret(repr(notifier.__dict__) + repr(notifier._routes) + logs.getvalue())
    monkeypatch.setenv("TEST_SLACK_URL", f"ftp://hooks.example/{SLACK_TOKEN}")
    with pytest.raises(InputError) as refused:
        standalone(policy, sinks, TARGET, cluster.api)
    assert str(refused.value) == "notifications sink a: url is not an http(s) URL"


def test_secret_key_refs_are_read_from_the_rollouts_namespace(cluster: Cluster) -> None:
    data = {"slack-url": base64.b64encode(f"https://h.example/{SLACK_TOKEN}\n".encode())}
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name="rollout-notify"),
        data={k: v.decode() for k, v in data.items()},
    )
    client.CoreV1Api(cluster.api).create_namespaced_secret("demo", secret)
    client.CoreV1Api(cluster.api).create_namespaced_secret(
        "default", client.V1Secret(metadata=client.V1ObjectMeta(name="other"), data={"k": "eA=="})
    )
    reader = SecretReader(cluster.api, "demo")
    ref = {"secretKeyRef": {"name": "rollout-notify", "key": "slack-url"}}
    value = reader.read(SecretSource.model_validate(ref), "sink a: url")
    assert value == SecretStr(f"https://h.example/{SLACK_TOKEN}")  # trailing newline dropped
    assert str(value) == "**********" and SLACK_TOKEN not in repr(value)
    missing = {"secretKeyRef": {"name": "rollout-notify", "key": "nope"}}
    with pytest.raises(InputError, match="Secret demo/rollout-notify has no key 'nope'"):
        reader.read(SecretSource.model_validate(missing), "sink a: url")
    absent = {"secretKeyRef": {"name": "other", "key": "k"}}
    with pytest.raises(InputError, match=r"cannot read Secret demo/other \(HTTP 404\)"):
        reader.read(SecretSource.model_validate(absent), "sink a: url")  # not in its namespace
