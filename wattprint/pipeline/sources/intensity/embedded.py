"""The shipped annual grid intensities (`wattprint/pipeline/data/intensity_annual.csv`), used when no hourly data
exists.

Zone ids (matched as `pipeline.zones.canonical_zone` spells them: case-insensitively):
  country  ISO 3166-1 alpha-2, e.g. `FR`, `DE`, `GB` (`UK` is accepted for `GB`)
  cloud    `<provider>:<region>` with the provider's own region id: `aws:us-west-2`, `gcp:europe-west1`,
           `azure:westeurope`
  world    `world`
Attribution of every row is in `wattprint/pipeline/data/INTENSITY_SOURCES.md`.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ...errors import InputError
from ...records import INTENSITY_BASES
from ...zones import canonical_zone

FILE = "intensity_annual.csv"
COLUMNS = ("zone", "kind", "name", "g_per_kwh", "year", "basis", "source", "licence")
KINDS = ("country", "aws", "gcp", "azure", "world")


@dataclass(frozen=True)
class AnnualIntensity:
    zone: str
    kind: str
    name: str
    g_per_kwh: float
    year: int
    basis: str
    source: str
    licence: str


def _row(fields: dict[str, str], where: str) -> AnnualIntensity:
    try:
        value, year = float(fields["g_per_kwh"]), int(fields["year"])
    except ValueError:
        raise InputError(where, "g_per_kwh or year is not a number", "fix the shipped table") from None
    row = AnnualIntensity(fields["zone"].strip(), fields["kind"].strip(), fields["name"].strip(), value, year,
                          fields["basis"].strip(), fields["source"].strip(), fields["licence"].strip())
    if (row.kind not in KINDS or row.basis not in INTENSITY_BASES or not math.isfinite(value) or value < 0
            or not (row.zone and row.name and row.source and row.licence)):
        raise InputError(where, f"invalid row {row}", "fix the shipped table")
    return row


def parse(text: str, name: str = FILE) -> list[AnnualIntensity]:
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise InputError(f"{name}:1", f"header is {reader.fieldnames}", f"expected {','.join(COLUMNS)}")
    rows = [_row(r, f"{name}:{reader.line_num}") for r in reader]
    seen: set[str] = set()
    for r in rows:
        if r.zone.lower() in seen:
            raise InputError(name, f"zone {r.zone} appears twice", "keep one row per zone")
        seen.add(r.zone.lower())
    return rows


@lru_cache(maxsize=1)
def _table() -> tuple[tuple[AnnualIntensity, ...], dict[str, AnnualIntensity]]:
    text = resources.files("wattprint.pipeline.data").joinpath(FILE).read_text(encoding="utf-8")
    rows = tuple(parse(text))
    return rows, {r.zone: r for r in rows}


def load() -> list[AnnualIntensity]:
    """Every shipped row, in file order."""
    return list(_table()[0])


def lookup(zone: str) -> AnnualIntensity | None:
    """The row for a zone id (see the module doc for the naming), or None."""
    return _table()[1].get(canonical_zone(zone))


def world() -> AnnualIntensity:
    row = lookup("world")
    if row is None:
        raise InputError(FILE, "no 'world' row", "the shipped table must have a world default")
    return row
