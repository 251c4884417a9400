"""UTC instants: strict parsing (no naive timestamps) and one output format."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from .errors import InputError


def parse_instant(text: str | int | float, where: str, *, allow_epoch: bool = False) -> datetime:
    """An ISO 8601 timestamp with an offset (or Z), as an aware UTC datetime.

    A naive timestamp is an error: guessing its zone would shift energy into the wrong hour.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        if not allow_epoch or not _finite(text):
            raise InputError(where, f"expected an ISO 8601 timestamp, got the number {text!r}")
        return from_epoch(text, where)
    s = str(text).strip()
    if allow_epoch:
        try:
            return datetime.fromtimestamp(float(s), tz=UTC)
        except (ValueError, OverflowError, OSError):
            pass
    if not s:
        raise InputError(where, "empty timestamp", "give an ISO 8601 time with an offset, e.g. 2024-03-01T00:00:00Z")
    iso = s[:-1] + "+00:00" if s[-1:] in ("Z", "z") else s
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise InputError(
            where, f"{s!r} is not an ISO 8601 timestamp", "use e.g. 2024-03-01T00:00:00Z or 2024-03-01T01:00:00+01:00"
        ) from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise InputError(
            where, f"timestamp {s!r} has no timezone", "add Z or an offset such as +00:00 (wattprint never guesses)"
        )
    return to_utc(dt, where, s)


def to_utc(dt: datetime, where: str, text: str | None = None) -> datetime:
    """An aware datetime in UTC; InputError when that falls outside years 1-9999 (e.g. 0001-01-01T00:00+01:00)."""
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InputError(where, f"timestamp {text or dt.isoformat()!r} is out of range in UTC",
                         "give a time between years 1 and 9999") from None


def from_epoch(seconds: float, where: str) -> datetime:
    """Epoch seconds as an aware UTC datetime; InputError when out of range."""
    try:
        return datetime.fromtimestamp(float(seconds), tz=UTC)
    except (OverflowError, ValueError, OSError):
        raise InputError(where, f"epoch time {seconds!r} is out of range",
                         "give seconds since 1970-01-01 UTC") from None


def plus(start: datetime, delta: timedelta, where: str) -> datetime:
    """start + delta; InputError when that passes year 9999."""
    try:
        return start + delta
    except OverflowError:
        raise InputError(where, f"{iso(start)} plus {delta} is past year 9999",
                         "check the time and the period") from None


def _finite(x: int | float) -> bool:
    try:
        return math.isfinite(x)
    except OverflowError:       # an int too large for a float
        return False


def month_start_hour(hour: int) -> int:
    """The first hour of the UTC month holding `hour` (both in hours since 1970-01-01T00:00Z)."""
    d = datetime.fromtimestamp(hour * 3600, tz=UTC)
    return int(d.replace(day=1, hour=0).timestamp()) // 3600


def next_month_hour(hour: int) -> int:
    """The first hour of the UTC month after the one holding `hour`."""
    return month_start_hour(month_start_hour(hour) + 24 * 32)


def hour_start(hour: int) -> datetime:
    """The instant an hour index (hours since 1970-01-01T00:00Z) begins."""
    return datetime.fromtimestamp(hour * 3600, tz=UTC)


def month_starts(lo: int, hi: int) -> list[int]:
    """The first hours of the UTC months that overlap the hours [lo, hi)."""
    out, m = [], month_start_hour(lo)
    while m < hi:
        out.append(m)
        m = next_month_hour(m)
    return out


def iso(dt: datetime) -> str:
    """Render an instant as RFC 3339 UTC with a Z."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
