"""US EPA equivalences for a carbon figure: miles driven by an average gasoline car, homes' energy use for a year.

The reports print them as model cards do ("roughly equal to N miles driven by an average gasoline-powered car or
M homes' energy use for one year, according to the US EPA"). The factors, with the EPA calculator edition, date,
URL and what could and could not be confirmed, are in `wattprint/pipeline/data/epa_equivalences.csv`; nothing is
hard-coded here.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import InputError

FILE = "epa_equivalences.csv"
COLUMNS = ("factor", "value", "unit", "epa_calculation", "edition", "date", "url", "note")
FACTORS = ("kg_per_mile", "kg_per_home_year")


@dataclass(frozen=True)
class Equivalences:
    kg_per_mile: float          # kg CO2eq per mile driven by an average gasoline-powered passenger vehicle
    kg_per_home_year: float     # kg CO2 per home's energy use for one year
    edition: str
    date: str
    url: str
    note: str = ""


def parse(text: str, name: str = FILE) -> Equivalences:
    """The factors of an equivalences table's text; InputError 'name:LINE' on a bad row."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise InputError(f"{name}:1", f"header is {reader.fieldnames}", f"expected {','.join(COLUMNS)}")
    values: dict[str, float] = {}
    meta: tuple[str, str, str] | None = None
    notes: list[str] = []
    for row in reader:
        where = f"{name}:{reader.line_num}"
        if None in row or any(v is None for v in row.values()):
            raise InputError(where, f"expected {len(COLUMNS)} fields", f"columns are {','.join(COLUMNS)}")
        factor = row["factor"].strip()
        if factor not in FACTORS:
            raise InputError(where, f"unknown factor {factor!r}", f"expected {', '.join(FACTORS)}")
        if factor in values:
            raise InputError(where, f"factor {factor} appears twice", "keep one row per factor")
        try:
            value = float(row["value"])
        except ValueError:
            raise InputError(where, f"value {row['value']!r} is not a number", "fix the shipped table") from None
        if not math.isfinite(value) or value <= 0:
            raise InputError(where, f"value {row['value']!r} must be a positive number", "fix the shipped table")
        row_meta = (row["edition"].strip(), row["date"].strip(), row["url"].strip())
        if not all(row_meta):
            raise InputError(where, "edition, date and url must be filled", "say 'unconfirmed' where unknown")
        if meta is not None and row_meta != meta:
            raise InputError(where, "edition, date or url differs from the row above",
                             "all factors must come from one edition of the calculator")
        meta = row_meta
        values[factor] = value
        if row["note"].strip():
            notes.append(f"{factor}: {row['note'].strip()}")
    missing = [f for f in FACTORS if f not in values]
    if missing or meta is None:
        raise InputError(name, f"missing factor(s) {', '.join(missing or FACTORS)}", "fix the shipped table")
    return Equivalences(values["kg_per_mile"], values["kg_per_home_year"], *meta, note=" | ".join(notes))


@lru_cache(maxsize=1)
def load() -> Equivalences:
    """The shipped factors."""
    return parse(resources.files("wattprint.pipeline.data").joinpath(FILE).read_text(encoding="utf-8"))


def equivalents(emissions_kg: float) -> dict[str, Any]:
    """Miles and home-years equal to `emissions_kg`, with the factors and edition used (for traceability)."""
    if isinstance(emissions_kg, bool) or not math.isfinite(emissions_kg) or emissions_kg < 0:
        raise ValueError(f"emissions_kg must be a finite number >= 0, got {emissions_kg!r}")
    eq = load()
    return {
        "miles_driven": emissions_kg / eq.kg_per_mile,
        "homes_energy_years": emissions_kg / eq.kg_per_home_year,
        "kg_per_mile": eq.kg_per_mile,
        "kg_per_home_year": eq.kg_per_home_year,
        "edition": eq.edition,
        "date": eq.date,
        "url": eq.url,
    }


def sentence(emissions_kg: float) -> str:
    """'roughly equal to N miles driven by an average gasoline-powered car or M homes' energy use for one year,
    according to the US EPA' for a report."""
    e = equivalents(emissions_kg)
    miles, homes = e["miles_driven"], e["homes_energy_years"]
    homes_text = f"{homes:,.1f}" if homes >= 1 else f"{homes:.2g}"
    return (f"roughly equal to {miles:,.0f} miles driven by an average gasoline-powered car or {homes_text} homes' "
            f"energy use for one year, according to the US EPA ({e['edition']})")
