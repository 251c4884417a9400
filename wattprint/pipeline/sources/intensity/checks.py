"""Checks on a parsed set of intensity points: zone spelling, duplicates, conflicts and overlaps within a zone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ...errors import InputError
from ...records import IntensityPoint, intensity_signal
from ...timeutil import iso
from ...zones import canonical_zone

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_POINT = timedelta(days=1)   # the longest record of any source (Electricity Maps daily); UK is 30 min
HOUR = timedelta(hours=1)
HOURLY_ROW_FORMATS = {"csv": "the generic CSV", "electricitymaps": "an Electricity Maps hourly CSV export"}


def canonical_points(points: Iterable[IntensityPoint]) -> list[IntensityPoint]:
    """The points with their zones in canonical spelling (`pipeline.zones`), in the same order.

    Two points of one canonical zone over the same interval whose zones are spelled differently (`FR` and
    `fr`) are an InputError naming both origins, even when their values agree: which row was meant is not
    knowable, and the store would keep one value per zone and time.
    """
    seen: dict[tuple[str, datetime, datetime], IntensityPoint] = {}
    out: list[IntensityPoint] = []
    for p in points:
        zone = canonical_zone(p.zone)
        first = seen.setdefault((zone, p.start, p.end), p)
        if first is not p and first.zone != p.zone:
            raise InputError(
                p.origin, f"ambiguous duplicate: zone {first.zone!r} at {first.origin} and zone {p.zone!r} at "
                          f"{p.origin} are the same zone {zone} (zones compare case-insensitively) at {iso(p.start)}",
                "keep one row per zone and time, spelled one way")
        out.append(p if p.zone == zone else replace(p, zone=zone))
    return out


def _overlap_hint(a: IntensityPoint, b: IntensityPoint) -> str:
    """What to do about two overlapping points of one import."""
    fmt = HOURLY_ROW_FORMATS.get(b.source)
    (file_a, _, line_a), (file_b, _, line_b) = a.origin.rpartition(":"), b.origin.rpartition(":")
    rows_of_one_file = file_a == file_b and line_a.isdigit() and line_b.isdigit()   # file:line, not a JSON path
    if (fmt and a.source == b.source and rows_of_one_file and a.end - a.start == HOUR == b.end - b.start
            and a.start != b.start):
        # rows less than an hour apart in a format whose every row is the hour [t, t + 1h): sub-hourly data
        return (f"each row of {fmt} covers one hour from its timestamp, so rows less than an hour apart overlap: "
                "aggregate sub-hourly values to one time-weighted mean per zone and UTC hour, or import the "
                "sub-hourly points in a format that carries their length (electricitymaps-json with "
                "temporalGranularity 5_minutes/15_minutes, uk-json, watttime-json)")
    return "keep one source per zone and time: remove one of the two rows (or files)"


def _same(a: IntensityPoint, b: IntensityPoint) -> bool:
    return (a.zone, a.start, a.end, a.g_per_kwh, a.basis) == (b.zone, b.start, b.end, b.g_per_kwh, b.basis)


def check_points(points: Iterable[IntensityPoint]) -> list[IntensityPoint]:
    """Points with canonical zones (`canonical_points`), sorted by (zone, signal, start) with identical duplicates
    dropped (the first kept).

    Two points of one zone and signal (average or marginal, `records.intensity_signal`) that overlap in time without
    being identical (same interval, value and basis) are an InputError naming both origins: the store keeps one
    value per zone, signal and hour (an average and a marginal point of the same hour are both kept). So is a
    point before 1970 (energy is measured after it; the store's hour arithmetic counts from it) or one
    longer than a day (no source publishes such a value; it would be spread over every hour it covers).
    """
    out: list[IntensityPoint] = []
    def key(p: IntensityPoint) -> tuple[str, str, datetime, datetime]:
        return p.zone, intensity_signal(p.basis), p.start, p.end

    for p in sorted(canonical_points(points), key=key):
        if p.end <= p.start:
            raise InputError(p.origin, f"interval {iso(p.start)}..{iso(p.end)} is empty", "fix the end time")
        if p.start < EPOCH:
            raise InputError(p.origin, f"time {iso(p.start)} is before 1970", "check the year of the timestamp")
        if p.end - p.start > MAX_POINT:
            raise InputError(p.origin, f"interval {iso(p.start)}..{iso(p.end)} is longer than a day",
                             "intensity is hourly or finer; check the start and end times")
        # Only the previous kept point of the zone and signal can overlap: kept points of one are disjoint and sorted.
        prev = out[-1] if out and key(out[-1])[:2] == key(p)[:2] else None
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
        raise InputError(p.origin, problem, _overlap_hint(prev, p))
    return out
