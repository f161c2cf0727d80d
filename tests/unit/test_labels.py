"""Label values and durations: nothing pasted into PromQL can change a query's shape."""

from datetime import timedelta

import pytest

from rollout.errors import InputError
from rollout.metrics.labels import (
    check_duration,
    check_label_name,
    check_label_value,
    escape_label_value,
    format_duration,
    matcher,
    parse_duration,
)

INJECTIONS = [
    'v2"} or vector(1) #',
    'v2",version=~".*',
    "v2\\",
    'a"b',
    "v2}",
    "v2\nx",
    "",
    "-v2",
    "v2 ",
    "x" * 64,
]


@pytest.mark.parametrize("value", INJECTIONS)
def test_unsafe_label_values_are_rejected(value: str) -> None:
    with pytest.raises(InputError, match="version"):
        check_label_value("version", value)


@pytest.mark.parametrize("value", ["v1", "v2", "1.4.1", "canary_2024-01", "A", "x" * 63])
def test_safe_label_values_pass(value: str) -> None:
    assert check_label_value("version", value) == value


def test_escaping_is_applied_even_behind_the_charset() -> None:
    assert escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_matcher_checks_name_and_value() -> None:
    assert matcher("version", "v2", "version") == 'version="v2"'
    with pytest.raises(InputError):
        matcher('version="x",a', "v2", "version")
    with pytest.raises(InputError):
        matcher("version", 'v2"} or vector(1) #', "version")


@pytest.mark.parametrize("name", ["9lives", "a-b", "a b", ""])
def test_bad_label_names_are_rejected(name: str) -> None:
    with pytest.raises(InputError):
        check_label_name("labels.version", name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("1m", timedelta(minutes=1)),
        ("1m30s", timedelta(seconds=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("1h5m", timedelta(minutes=65)),
        ("2d", timedelta(days=2)),
        ("1s500ms", timedelta(milliseconds=1500)),
    ],
)
def test_durations_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0s", "0m0s", "0ms"])
def test_zero_durations_are_not_positive(text: str) -> None:
    with pytest.raises(ValueError, match="not positive"):
        parse_duration(text)


@pytest.mark.parametrize(
    "text", ["", "30", "-5s", "1.5m", "30s1m", "1 m", "5x", "1m]) or vector(1", "ms"]
)
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
    with pytest.raises(InputError, match="window"):
        check_duration("window", text)


@pytest.mark.parametrize("text", ["30s", "1m", "1m30s", "500ms", "1h", "1h0m1s"])
def test_format_round_trips(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


def test_format_is_shortest() -> None:
    assert format_duration(timedelta(seconds=90)) == "1m30s"
    assert format_duration(timedelta(milliseconds=500)) == "500ms"
