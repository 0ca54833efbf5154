"""Event times and durations: everything is integer milliseconds since the epoch (UTC).

Event times arrive as epoch milliseconds (numbers, or strings of digits) or ISO-8601 strings;
a timestamp without a zone is UTC. Durations are milliseconds or ``timedelta``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["format_timestamp", "parse_timestamp", "to_duration_ms"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_duration_ms(value: int | float | timedelta, what: str, *, minimum: int = 0) -> int:
    """``value`` (ms or a ``timedelta``) as whole milliseconds, at least ``minimum``."""
    if isinstance(value, timedelta):
        ms = value // _MS
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ms = int(value)
        if ms != value:
            raise ValueError(f"{what} must be whole milliseconds, got {value!r}")
    else:
        raise ValueError(f"{what} must be milliseconds (an int) or a timedelta, got {value!r}")
    if ms < minimum:
        raise ValueError(f"{what} must be at least {minimum} ms, got {ms}")
    return ms


def parse_timestamp(value: Any) -> int | None:
    """Epoch ms from an event-time value, or None if it is not one: an int or float (epoch
    ms), a string of digits (epoch ms), an ISO-8601 string, or a ``datetime``."""
    kind = type(value)
    if kind is int:
        return value  # type: ignore[no-any-return]
    if kind is str:
        if value.isdigit():
            return int(value)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return _datetime_ms(parsed)
    if kind is float:
        return int(value) if value == value and abs(value) < 1e16 else None  # NaN, inf
    if isinstance(value, datetime):
        return _datetime_ms(value)
    return None


def _datetime_ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MS


def format_timestamp(ms: int) -> str:
    """ISO-8601 UTC with milliseconds: ``2020-04-15T08:05:00.000Z``."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
