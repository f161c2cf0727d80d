"""Slack incoming-webhook messages in Block Kit: what happened, where, at which weight, and
the metrics that decided, with their values, limits and verdicts.

Slack rejects a message that breaks Block Kit's limits (a header over 150 characters, a
section text over 3000, more than 10 fields), so every text is clipped to its limit: a long
reason or many metrics shorten the message instead of losing it.
"""

import json

from rollout.judge import Verdict
from rollout.notify.events import (
    Analysis,
    LimitOutcome,
    MetricOutcome,
    NotificationEvent,
    headline,
)

HEADER_MAX = 150
TEXT_MAX = 3000
FIELD_MAX = 2000
_ICONS = {"promoted": ":white_check_mark:", "rolledBack": ":rewind:", "failed": ":x:"}
_VERDICT_ICONS = {
    Verdict.PASS: ":large_green_circle:",
    Verdict.FAIL: ":red_circle:",
    Verdict.INCONCLUSIVE: ":large_yellow_circle:",
}

Block = dict[str, object]


def encode(event: NotificationEvent) -> tuple[bytes, dict[str, str]]:
    """The request body and headers for Slack's incoming webhook."""
    body = json.dumps(message(event)).encode()
    return body, {"Content-Type": "application/json; charset=utf-8"}


def message(event: NotificationEvent) -> dict[str, object]:
    """The Block Kit message; `text` is the fallback shown in notifications."""
    blocks: list[Block] = [
        {"type": "header", "text": _plain(f"{_icon(event)} {headline(event)}", HEADER_MAX)},
        {"type": "section", "text": _mrkdwn(_escape(event.reason)), "fields": _fields(event)},
    ]
    if event.analysis is not None:
        blocks += [{"type": "divider"}, _metrics(event.analysis)]
    blocks.append({"type": "context", "elements": [_mrkdwn(_context(event))]})
    return {"text": _clip(headline(event), TEXT_MAX), "blocks": blocks}


def _icon(event: NotificationEvent) -> str:
    return _ICONS.get(event.kind, ":warning:" if event.warning else ":arrow_forward:")


def _fields(event: NotificationEvent) -> list[Block]:
    where = event.where
    pairs = [
        ("Canary weight", f"{event.weight}%"),
        ("Step", f"{event.step} of {where.steps}"),
        ("Phase", event.phase),
        ("Verdict", str(event.verdict) if event.verdict is not None else "-"),
        ("Stable -> canary", f"{where.stable} -> {where.canary}"),
        ("VirtualService", f"{where.rollout.namespace}/{where.virtual_service}"),
    ]
    return [_mrkdwn(f"*{name}*\n{_escape(value)}", FIELD_MAX) for name, value in pairs]


def _metrics(analysis: Analysis) -> Block:
    lines = [
        f"*{analysis.check.capitalize()} check* at {analysis.at:%H:%M:%S} UTC over "
        f"{analysis.window}: {_VERDICT_ICONS[analysis.verdict]} {analysis.verdict}"
    ]
    lines += [_metric_line(metric) for metric in analysis.metrics]
    return {"type": "section", "text": _mrkdwn("\n".join(lines))}


def _metric_line(metric: MetricOutcome) -> str:
    limits = ", ".join(_limit(metric.unit, limit) for limit in metric.limits)
    requests = _count(metric.canary_requests), _count(metric.stable_requests)
    return (
        f"{_VERDICT_ICONS[metric.verdict]} `{_escape(metric.name)}` canary "
        f"{_value(metric.unit, metric.canary)} / stable {_value(metric.unit, metric.stable)} "
        f"({requests[0]} / {requests[1]} requests); {limits}"
    )


def _limit(unit: str, limit: LimitOutcome) -> str:
    if limit.name == "maxRatio":
        bound, seen = (
            f"x{limit.limit:g}",
            "-" if limit.observed is None else f"x{limit.observed:.3g}",
        )
    else:
        bound, seen = _value(unit, limit.limit), _value(unit, limit.observed)
    return f"{limit.name} {bound} (seen {seen}: {limit.verdict})"


def _value(unit: str, value: float | None) -> str:
    """A value in its unit: error ratios as per cent, latencies in ms, PromQL as is."""
    if value is None:
        return "-"
    if unit == "ratio":
        return f"{value * 100:.2f} %"
    return f"{value:.1f} ms" if unit == "ms" else f"{value:.4g}"


def _count(requests: float | None) -> str:
    return "-" if requests is None else f"{requests:.0f}"


def _context(event: NotificationEvent) -> str:
    rollout = event.where.rollout
    return _escape(
        f"cello-rollout · {rollout.kind} {rollout.namespace}/{rollout.name} · "
        f"{event.at:%Y-%m-%d %H:%M:%S} UTC · event {event.id}"
    )


def _plain(text: str, limit: int = TEXT_MAX) -> Block:
    return {"type": "plain_text", "text": _clip(text, limit), "emoji": True}


def _mrkdwn(text: str, limit: int = TEXT_MAX) -> Block:
    return {"type": "mrkdwn", "text": _clip(text, limit)}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as control characters (links, mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
