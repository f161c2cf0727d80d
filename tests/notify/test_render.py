"""Must-show 1: what Slack and webhook receivers get, checked by local HTTP receivers.

Events come from the real engine and analysis (a driver over a faulty canary), so the
messages carry real verdicts, values and limits.
"""

import hashlib
import hmac
import json
from typing import Any

from cloudevents.core.bindings.http import HTTPMessage, from_http_event
from notify_helpers import SIGNING_KEY, T0, driver, notifier, slack_sink, webhook_sink
from notify_receivers import Seen, receiver

from rollout.engine import Start, Tick
from rollout.judge import Verdict
from rollout.notify import slack
from rollout.notify.delivery import Dispatcher
from rollout.notify.events import Analysis, InvolvedObject, MetricOutcome, NotificationEvent, Where

TEXT_TYPES = {"mrkdwn", "plain_text"}
BLOCK_TYPES = {"header", "section", "context", "divider"}


def check_text(obj: Any, limit: int, types: set[str] = TEXT_TYPES) -> None:
    assert isinstance(obj, dict) and obj["type"] in types, obj
    assert isinstance(obj["text"], str) and 0 < len(obj["text"]) <= limit, obj


def check_block_kit(message: Any) -> None:
    """The Block Kit rules a Slack incoming webhook enforces that we can check offline."""
    assert isinstance(message["text"], str) and message["text"]
    blocks = message["blocks"]
    assert isinstance(blocks, list) and 0 < len(blocks) <= 50
    for block in blocks:
        assert block["type"] in BLOCK_TYPES, block
        if block["type"] == "header":
            check_text(block["text"], 150, {"plain_text"})
        elif block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                check_text(block["text"], 3000)
            fields = block.get("fields", [])
            assert len(fields) <= 10
            for item in fields:
                check_text(item, 2000)
        elif block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            for element in block["elements"]:
                check_text(element, 3000)
        else:
            assert set(block) == {"type"}


def run_faulty_canary(dispatcher: Dispatcher, *sinks: Any) -> None:
    """Start, then one failing analysis: started, checkFailed, rolledBack."""
    rollout = driver(0.5, notifier(dispatcher, *sinks))
    rollout.handle(Start(rollout._clock()))
    rollout.handle(Tick(rollout._clock()))
    assert rollout.state.phase == "RolledBack"


def test_slack_messages_are_valid_block_kit_with_the_deciding_metrics(
    dispatcher: Dispatcher,
) -> None:
    with receiver() as hook:
        run_faulty_canary(dispatcher, slack_sink(hook.url))
        seen = hook.wait_for(3)
    messages = [json.loads(request.body) for request in seen]
    for request, message in zip(seen, messages, strict=True):
        assert request.headers["Content-Type"].startswith("application/json")
        check_block_kit(message)
    headers = [m["blocks"][0]["text"]["text"] for m in messages]
    assert "Rollout started" in headers[0]
    assert "Check failed" in headers[1] and "Rolled back" in headers[2]
    metrics = messages[1]["blocks"][3]["text"]["text"]
    assert "`error-rate` canary 50.00 % / stable 0.00 %" in metrics
    assert "max 5.00 % (seen 50.00 %: fail)" in metrics
    assert "*Verdict*\nfail" in [f["text"] for f in messages[2]["blocks"][1]["fields"]]


def test_slack_clips_long_texts_and_many_metrics_to_block_kit_limits() -> None:
    where = Where(
        rollout=InvolvedObject("rollout.cello.dev/v1alpha1", "CanaryRollout", "demo", "n" * 63),
        virtual_service="v" * 253,
        stable="s" * 63,
        canary="c" * 63,
        steps=99,
    )
    metric = MetricOutcome("m" * 60, "ms", Verdict.FAIL, "slow", 9.0, 1.0, 5.0, 5.0, ())
    analysis = Analysis("step", T0, Verdict.FAIL, "x" * 5000, "1m", (metric,) * 200)
    event = NotificationEvent("checkFailed", T0, where, "Progressing", 1, 50, "r" * 5000, analysis)
    check_block_kit(slack.message(event))


def test_webhook_bodies_are_cloudevents_signed_over_the_exact_bytes(
    dispatcher: Dispatcher,
) -> None:
    with receiver() as hook:
        run_faulty_canary(dispatcher, webhook_sink(hook.url))
        seen = hook.wait_for(3)
    events = [parse_cloud_event(request) for request in seen]
    assert [e.get_type() for e in events] == [
        "dev.cello.rollout.started",
        "dev.cello.rollout.checkFailed",
        "dev.cello.rollout.rolledBack",
    ]
    failed = events[1]
    assert (
        failed.get_source()
        == "/apis/networking.istio.io/v1/namespaces/demo/virtualservices/cello-app"
    )
    assert failed.get_specversion() == "1.0"
    data = failed.get_data()
    assert isinstance(data, dict)
    assert data["kind"] == "checkFailed" and data["weight"] == 50 and data["step"] == 1
    metric = data["analysis"]["metrics"][0]
    assert metric["canary"] == 0.5 and metric["verdict"] == "fail"
    assert metric["limits"][0] == {"name": "max", "limit": 0.05, "observed": 0.5, "verdict": "fail"}


def test_a_tampered_body_or_another_key_fails_the_signature(dispatcher: Dispatcher) -> None:
    with receiver() as hook:
        run_faulty_canary(dispatcher, webhook_sink(hook.url))
        request = hook.wait_for(1)[0]
    signature = request.headers["X-Rollout-Signature"]
    assert not verify(b"another key", request.body, signature)
    assert not verify(SIGNING_KEY.encode(), request.body + b" ", signature)


def parse_cloud_event(request: Seen) -> Any:
    """Parse with the cloudevents SDK after checking the signature as a receiver would."""
    signature = request.headers["X-Rollout-Signature"]
    assert verify(SIGNING_KEY.encode(), request.body, signature)
    assert request.headers["Content-Type"].startswith("application/cloudevents+json")
    return from_http_event(HTTPMessage(headers=request.headers, body=request.body))


def verify(key: bytes, body: bytes, signature: str) -> bool:
    """What a receiver does: recompute the HMAC of the raw body, compare in constant time."""
    expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)
