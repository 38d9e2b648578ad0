"""Instants on the wire and in the store.

The store keeps every instant as integer milliseconds since the Unix epoch (UTC): comparable, indexable
and the same on SQLite and PostgreSQL. The wire form is RFC 3339 in UTC with milliseconds and ``Z``.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime, timedelta

_BARE_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_SPACE_FOR_PLUS = re.compile(r"^([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9:.,]+) ([0-9]{2}(?::?[0-9]{2})?)$")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class InvalidTime(ValueError):
    pass


def now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def parse_time(text: str) -> datetime:
    """Any RFC 3339 / ISO 8601 instant; a bare date means midnight UTC; no offset means UTC.

    A space where an offset's ``+`` belongs (``2024-05-01T14:00:00 02:00``) is read as ``+``: that is
    what an unencoded ``+`` in a query string becomes, and it can mean nothing else there.
    """
    value = text.strip()
    if not value:
        raise InvalidTime("empty time")
    try:
        if _BARE_DATE.match(value):
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        if value[-1] in "zZ":
            value = value[:-1] + "+00:00"
        value = _SPACE_FOR_PLUS.sub(r"\1+\2", value)
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1) if "T" not in value else value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        # OverflowError: an offset that moves the instant outside years 1..9999.
        raise InvalidTime(f"not an RFC 3339 time: {text!r}") from exc


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, truncating sub-millisecond digits (the wire shows milliseconds)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # timedelta // timedelta is an exact integer floor, as the arithmetic on days/seconds/µs was.
    return (moment - _EPOCH) // _ONE_MS


def to_ms_exact(moment: datetime) -> float:
    """Milliseconds since the epoch keeping microseconds, for comparisons against filter values."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds / 1000


def from_ms(ms: int) -> datetime:
    """The instant ``ms`` milliseconds after the epoch, exactly (no float rounding)."""
    return _EPOCH + timedelta(milliseconds=ms)


@functools.lru_cache(maxsize=16384)  # ingestion formats the same few instants over and over
def format_ms(ms: int | None) -> str | None:
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis:03d}Z"


def parse_to_ms(text: str) -> int:
    return to_ms(parse_time(text))
