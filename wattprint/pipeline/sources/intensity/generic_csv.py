"""The generic CSV: `timestamp,zone,intensity_g_per_kwh`, one hour [timestamp, timestamp + 1h) per row.

The header is required; names match case-insensitively; `zone` may be left out when --zone is given.
Timestamps need an offset or Z. Any other column is an error, so a typo never drops data silently.
Sub-hourly data does not fit this format (rows less than an hour apart overlap): aggregate it to hourly
means, or import it as Electricity Maps JSON, UK or WattTime JSON, which carry each point's length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

from ...errors import InputError
from ...records import IntensityPoint
from ...timeutil import parse_instant, plus
from ...zones import same_zone
from ._common import ParseResult, check_basis, csv_rows, number, require_zone

SOURCE = "csv"
HOUR = timedelta(hours=1)
COLUMNS = ("timestamp", "zone", "intensity_g_per_kwh")
REQUIRED = ("timestamp", "intensity_g_per_kwh")


class Row(NamedTuple):
    line: int
    zone: str                  # as written in the file (or --zone)
    start: datetime
    end: datetime
    g_per_kwh: float


def parse_csv(text: str | Iterable[str], name: str, *, zone: str | None = None,
              basis: str | None = None) -> ParseResult:
    """Rows of the generic CSV. `basis` defaults to lifecycle (the CSV has no basis column)."""
    b = check_basis(basis, default="lifecycle")
    points = [IntensityPoint(zone=r.zone, start=r.start, end=r.end, g_per_kwh=r.g_per_kwh, basis=b, source=SOURCE,
                             origin=f"{name}:{r.line}") for r in iter_rows(text, name, zone=zone)]
    if not points:
        raise no_rows(name)
    return ParseResult(points)


def no_rows(name: str) -> InputError:
    return InputError(name, "no data rows after the header", "add rows or check you chose the right file")


def iter_rows(text: str | Iterable[str], name: str, *, zone: str | None = None) -> Iterator[Row]:
    """The checked rows of the generic CSV, one at a time (`text`: the whole text, or its lines as a stream);
    the first bad row is an InputError naming its line."""
    rows = csv_rows(text, name)
    first = next(rows, None)
    if first is None:
        raise InputError(name, "file is empty", "write the header timestamp,zone,intensity_g_per_kwh and data rows")
    header_line, header = first
    where_h = f"{name}:{header_line}"
    cols: dict[str, int] = {}
    for i, h in enumerate(header):
        key = h.strip().lower()
        if key not in COLUMNS:
            raise InputError(where_h, f"unknown column {h.strip()!r}",
                             f"the generic CSV has exactly the columns {','.join(COLUMNS)} (zone optional)")
        if key in cols:
            raise InputError(where_h, f"column {h.strip()!r} appears twice", "keep one")
        cols[key] = i
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        raise InputError(where_h, f"missing column(s) {', '.join(missing)}",
                         "the header must be timestamp,zone,intensity_g_per_kwh")
    if "zone" not in cols:
        require_zone(zone, where_h, "csv (no zone column)")
    for line, fields in rows:
        where = f"{name}:{line}"
        if len(fields) != len(header):
            raise InputError(where, f"expected {len(header)} fields, got {len(fields)}", "fix the row")
        z = fields[cols["zone"]].strip() if "zone" in cols else ""
        if zone and z and not same_zone(z, zone):
            raise InputError(where, f"zone {z!r} differs from --zone {zone}", "drop --zone or fix the row")
        z = require_zone(z or zone, where, "csv row (empty zone)")
        start = parse_instant(fields[cols["timestamp"]], where)
        value = number(fields[cols["intensity_g_per_kwh"]], where)
        yield Row(line, z, start, plus(start, HOUR, where), value)
