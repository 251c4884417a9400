"""UTC instants: strict parsing (no naive timestamps) and one output format."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from .errors import InputError


def parse_instant(text: str | int | float, where: str, *, allow_epoch: bool = False) -> datetime:
    """An ISO 8601 timestamp with an offset (or Z), as an aware UTC datetime.

    A naive timestamp is an error: guessing its zone would shift energy into the wrong hour.
    """
    if isinstance(text, int | float) and not isinstance(text, bool):
        if not allow_epoch or not math.isfinite(text):
            raise InputError(where, f"expected an ISO 8601 timestamp, got the number {text!r}")
        return datetime.fromtimestamp(float(text), tz=UTC)
    s = str(text).strip()
    if allow_epoch:
        try:
            return datetime.fromtimestamp(float(s), tz=UTC)
        except (ValueError, OverflowError):
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
    return dt.astimezone(UTC)


def iso(dt: datetime) -> str:
    """Render an instant as RFC 3339 UTC with a Z."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")
