"""Checking and escaping everything that is pasted into PromQL text.

A namespace, service or version comes from the user or the cluster and ends up inside a
label matcher; a window ends up inside a range selector. Each is checked against a narrow
charset first, so a value such as `v2"} or vector(1) #` is rejected before it can change
the shape of a query, and label values are escaped anyway as a second line of defence.
"""

import re
from datetime import timedelta

from rollout.errors import InputError

# Kubernetes label values (what the version label of a subset holds) are at most 63 chars
# of [A-Za-z0-9._-], starting and ending alphanumeric; namespaces and services are a subset.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
# Prometheus label names.
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A PromQL duration: units largest first, each at most once (Prometheus' own grammar).
_DURATION = re.compile(
    r"^(?:(?P<y>\d+)y)?(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?"
    r"(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)
_UNIT_MS = {
    "y": 365 * 24 * 3600_000,
    "w": 7 * 24 * 3600_000,
    "d": 24 * 3600_000,
    "h": 3600_000,
    "m": 60_000,
    "s": 1000,
    "ms": 1,
}
DURATION_PATTERN = _DURATION.pattern


def check_label_value(field: str, value: str) -> str:
    """Return `value` if it is a safe label value (Kubernetes label charset), else raise."""
    if not _LABEL_VALUE.match(value):
        raise InputError(
            f"{field}: {value!r} is not a valid label value "
            "(1-63 characters of A-Z a-z 0-9 . _ -, alphanumeric at both ends)"
        )
    return value


def check_label_name(field: str, name: str) -> str:
    """Return `name` if it is a valid Prometheus label name, else raise."""
    if not _LABEL_NAME.match(name):
        raise InputError(f"{field}: {name!r} is not a valid Prometheus label name")
    return name


def escape_label_value(value: str) -> str:
    """Escape a value for use between double quotes in a PromQL label matcher."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def matcher(name: str, value: str, field: str) -> str:
    """One equality matcher `name="value"`, with both checked and the value escaped."""
    check_label_name(field, name)
    check_label_value(field, value)
    return f'{name}="{escape_label_value(value)}"'


def parse_duration(text: str) -> timedelta:
    """Parse a positive PromQL duration such as `30s`, `1m30s` or `500ms`."""
    match = _DURATION.match(text)
    if not text or not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 1m30s or 500ms")
    millis = sum(int(n) * _UNIT_MS[unit] for unit, n in match.groupdict().items() if n)
    if millis <= 0:
        raise ValueError(f"duration {text!r} is not positive")
    return timedelta(milliseconds=millis)


def format_duration(value: timedelta) -> str:
    """The shortest PromQL duration for `value` (whole milliseconds), e.g. `1m30s`."""
    millis = round(value.total_seconds() * 1000)
    if millis <= 0:
        raise ValueError(f"duration {value} is not positive")
    parts = []
    for unit in ("h", "m", "s", "ms"):  # y/w/d are left as hours: no calendar surprises
        count, millis = divmod(millis, _UNIT_MS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def check_duration(field: str, text: str) -> str:
    """Return `text` if it is a positive PromQL duration, else raise an InputError."""
    try:
        parse_duration(text)
    except ValueError as exc:
        raise InputError(f"{field}: {exc}") from exc
    return text
