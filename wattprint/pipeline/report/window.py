"""The UTC window a report covers: a calendar month, or any whole-hour [start, end)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..errors import InputError
from ..timeutil import iso, parse_instant

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    label: str | None = None          # "2026-10" for a calendar month

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600.0

    def previous(self) -> Window:
        """The month before, or the window of the same length just before."""
        if self.label:
            first = (self.start - timedelta(days=1)).replace(day=1)
            return Window(first, self.start, first.strftime("%Y-%m"))
        return Window(self.start - (self.end - self.start), self.start)


def month(text: str, where: str = "--month") -> Window:
    m = _MONTH.match(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1970:
        raise InputError(where, f"{text!r} is not a month", "use YYYY-MM, e.g. 2026-10")
    start = datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    return Window(start, end, start.strftime("%Y-%m"))


def resolve(month_text: str | None, start_text: str | None, end_text: str | None) -> Window:
    """From the flags: --month, or --start and --end (whole UTC hours; results are hourly)."""
    if month_text and (start_text or end_text):
        raise InputError("--month", "give either --month or --start/--end, not both")
    if month_text:
        return month(month_text)
    if not start_text or not end_text:
        raise InputError("--start" if not start_text else "--end", "the report needs a window",
                         "give --month YYYY-MM, or both --start and --end (ISO 8601 with an offset)")
    start = parse_instant(start_text, "--start")
    end = parse_instant(end_text, "--end")
    for flag, t in (("--start", start), ("--end", end)):
        if t.minute or t.second or t.microsecond:
            raise InputError(flag, f"{iso(t)} is not on a whole UTC hour",
                             "results are kept per UTC hour; use e.g. " + iso(t.replace(minute=0, second=0,
                                                                                             microsecond=0)))
    if end <= start:
        raise InputError("--end", f"{iso(end)} is not after --start {iso(start)}", "swap them or widen the window")
    return Window(start, end)
