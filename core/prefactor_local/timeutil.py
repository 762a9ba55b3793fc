"""Timestamps: aware UTC in, fixed-width ISO-8601 with a `Z` out (so text order is time order)."""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(timezone.utc)


def format_ts(moment: datetime) -> str:
    """`2026-01-02T03:04:05.123456Z` for an aware datetime."""
    if moment.tzinfo is not timezone.utc:
        moment = moment.astimezone(timezone.utc)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"  # drop "+00:00"


def now_iso() -> str:
    """The current time formatted by `format_ts`."""
    return format_ts(now())


def parse_ts(value: object) -> datetime:
    """Parse an ISO-8601 timestamp that carries an offset; raise ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO-8601 timestamp string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not a valid ISO-8601 timestamp") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("must include a timezone offset (naive timestamps are rejected)")
    return moment.astimezone(timezone.utc)


def parse_stored(value: str | None) -> datetime | None:
    """Parse a timestamp written by `format_ts` (or any aware ISO string); None stays None."""
    if value is None:
        return None
    try:
        return parse_ts(value)
    except ValueError:
        return None
