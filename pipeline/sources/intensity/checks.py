"""Checks on a parsed set of intensity points: duplicates, conflicts and overlaps within a zone."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ...errors import InputError
from ...records import IntensityPoint
from ...timeutil import iso

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_POINT = timedelta(days=1)   # the longest record of any source (Electricity Maps daily); UK is 30 min


def _same(a: IntensityPoint, b: IntensityPoint) -> bool:
    return (a.zone, a.start, a.end, a.g_per_kwh, a.basis) == (b.zone, b.start, b.end, b.g_per_kwh, b.basis)


def check_points(points: Iterable[IntensityPoint]) -> list[IntensityPoint]:
    """Points sorted by (zone, start) with identical duplicates dropped (the first kept).

    Two points of one zone that overlap in time without being identical (same interval, value and
    basis) are an InputError naming both origins: the store keeps one value per zone and hour. So is a
    point before 1970 (energy is measured after it; the store's hour arithmetic counts from it) or one
    longer than a day (no source publishes such a value; it would be spread over every hour it covers).
    """
    out: list[IntensityPoint] = []
    for p in sorted(points, key=lambda p: (p.zone, p.start, p.end)):
        if p.end <= p.start:
            raise InputError(p.origin, f"interval {iso(p.start)}..{iso(p.end)} is empty", "fix the end time")
        if p.start < EPOCH:
            raise InputError(p.origin, f"time {iso(p.start)} is before 1970", "check the year of the timestamp")
        if p.end - p.start > MAX_POINT:
            raise InputError(p.origin, f"interval {iso(p.start)}..{iso(p.end)} is longer than a day",
                             "intensity is hourly or finer; check the start and end times")
        # Only the previous kept point of the zone can overlap: kept points of a zone are disjoint and sorted.
        prev = out[-1] if out and out[-1].zone == p.zone else None
        if prev is None or prev.end <= p.start:
            out.append(p)
            continue
        if _same(prev, p):
            continue
        if prev.start == p.start and prev.end == p.end:
            problem = (f"conflicting values for zone {p.zone} at {iso(p.start)}: {prev.g_per_kwh:g} ({prev.basis}) "
                       f"at {prev.origin} vs {p.g_per_kwh:g} ({p.basis}) at {p.origin}")
        else:
            problem = (f"overlapping intervals for zone {p.zone}: {iso(prev.start)}..{iso(prev.end)} at {prev.origin} "
                       f"and {iso(p.start)}..{iso(p.end)} at {p.origin}")
        raise InputError(p.origin, problem, "keep one source per zone and time (remove one file or row), "
                                            "or import them under different zones")
    return out
