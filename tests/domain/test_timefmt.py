"""Instants: parsing any RFC 3339 / ISO 8601 input, storing milliseconds, serving ``...mmmZ``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from workplane.domain.timefmt import (
    InvalidTime,
    format_ms,
    from_ms,
    parse_time,
    parse_to_ms,
    to_ms,
    to_ms_exact,
)

NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NOON_MS = 1_714_564_800_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", NOON),
        ("2024-05-01T12:00:00z", NOON),
        ("2024-05-01t12:00:00Z", NOON),
        ("2024-05-01T12:00:00+00:00", NOON),
        ("2024-05-01T12:00:00-00:00", NOON),
        ("2024-05-01T14:00:00+02:00", NOON),
        ("2024-05-01T17:30:00+05:30", NOON),
        ("2024-05-01T08:00:00-04:00", NOON),
        ("2024-05-02T01:00:00+13:00", NOON),
        ("2024-05-01T12:00:00", NOON),  # no offset: UTC
        ("2024-05-01 12:00:00Z", NOON),
        ("2024-05-01T12:00Z", NOON),
        ("2024-05-01T14:00:00 02:00", NOON),  # "+" decoded to a space in a query string
        ("2024-05-01T14:00 0200", NOON),
        ("  2024-05-01T12:00:00Z ", NOON),
        ("2024-05-01T12:00:00.5Z", NOON + timedelta(milliseconds=500)),
        ("2024-05-01T12:00:00,5Z", NOON + timedelta(milliseconds=500)),
        ("2024-05-01T12:00:00.123Z", NOON + timedelta(milliseconds=123)),
        ("2024-05-01T12:00:00.123456Z", NOON + timedelta(microseconds=123_456)),
        ("2024-05-01T12:00:00.1234569Z", NOON + timedelta(microseconds=123_456)),  # beyond µs: cut
        ("2024-05-01T14:00:00.250+02:00", NOON + timedelta(milliseconds=250)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),  # bare date: midnight UTC
        ("2024-02-29", datetime(2024, 2, 29, tzinfo=UTC)),
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("1969-12-31T23:59:59.999Z", datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert parsed.tzinfo is not None
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "yesterday",
        "2024-02-30",
        "2023-02-29",
        "2024-13-01",
        "2024-05-01T24:00:01Z",
        "2024-05-01T12:60:00Z",
        "2024-05-01T12:00:00+25:00",
        "2024-05-01TZ",
        "1714564800000",
        "0001-01-01T00:00:00+02:00",  # before year 1 once in UTC
        "9999-12-31T23:00:00-02:00",  # after year 9999 once in UTC
        "2024-05-01T12:00:00Z junk",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(InvalidTime):
        parse_time(text)


def test_to_ms_truncates_below_a_millisecond() -> None:
    assert to_ms(NOON) == NOON_MS
    assert to_ms(NOON + timedelta(microseconds=999)) == NOON_MS
    assert to_ms(NOON + timedelta(microseconds=1_000)) == NOON_MS + 1
    assert to_ms(NOON.replace(tzinfo=None)) == NOON_MS  # naive: UTC
    assert to_ms(NOON.astimezone(timezone(timedelta(hours=2)))) == NOON_MS
    # Before the epoch: still floor, so the served text never moves forward in time.
    assert to_ms(datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)) == -1


def test_to_ms_exact_keeps_microseconds() -> None:
    assert to_ms_exact(NOON + timedelta(microseconds=500)) == NOON_MS + 0.5
    assert to_ms_exact(NOON) == NOON_MS


def test_parse_to_ms() -> None:
    assert parse_to_ms("2024-05-01T14:00:00+02:00") == NOON_MS
    assert parse_to_ms("2024-05-01") == NOON_MS - 12 * 3_600_000


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (NOON_MS, "2024-05-01T12:00:00.000Z"),
        (NOON_MS + 7, "2024-05-01T12:00:00.007Z"),
        (NOON_MS + 999, "2024-05-01T12:00:00.999Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_format_ms(ms: int, text: str) -> None:
    assert format_ms(ms) == text
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", text)
    assert parse_to_ms(text) == ms
    assert to_ms(from_ms(ms)) == ms


def test_format_none() -> None:
    assert format_ms(None) is None


def test_round_trip_through_offsets() -> None:
    for offset_minutes in (-720, -330, 0, 60, 345, 840):
        zone = timezone(timedelta(minutes=offset_minutes))
        local = (NOON + timedelta(milliseconds=123)).astimezone(zone)
        text = local.isoformat(timespec="milliseconds")
        assert format_ms(parse_to_ms(text)) == "2024-05-01T12:00:00.123Z"
