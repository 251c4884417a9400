"""The report as CSV: one row per number, so every figure of every other format can be found and checked.

Columns: section, item (which phase / project / cluster / day ... the number belongs to), field (its path
inside that item), value (unrounded), unit (from the field's name).

The rows are a walk over the JSON report (`Report.to_dict()`), so the CSV holds exactly the JSON's numbers.

Text cells go through `names.csv_cell` (a cell a spreadsheet would run as a formula gets a leading `'`); the
value column is always a number and is written as is.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

from .names import csv_cell
from .types import Report

COLUMNS = ("section", "item", "field", "value", "unit")
_ID_KEYS = ("project", "phase", "unit_name", "label", "layer", "cluster", "hostname", "job_id", "model", "date", "hour",
            "name")
_UNITS = (("_g_per_kwh", "gCO2eq/kWh"), ("g_per_unit", "gCO2eq/unit"), ("g_per_thousand_units", "gCO2eq/1000 units"),
          ("g_per_million_units", "gCO2eq/1000000 units"), ("operational_g", "gCO2eq"), ("embodied_g", "gCO2eq"),
          ("sci_g", "gCO2eq"), ("_kwh", "kWh"), ("_kg", "kgCO2eq"), ("kgco2eq_per_gpu", "kgCO2eq"),
          ("kg_per_gpu_hour", "kgCO2eq/GPU-hour"), ("gpu_hours", "GPU-hours"), ("cpu_hours", "core-hours"),
          ("hours_without_rapl", "hours"), ("_hours", "hours"),
          ("hours", "hours"), ("power_w", "W"), ("_pct", "fraction"), ("share", "fraction"),
          ("lifetime_years", "years"), ("utilisation", "fraction"), ("kg_per_mile", "kgCO2eq/mile"),
          ("kg_per_home_year", "kgCO2eq/home-year"), ("miles_driven", "miles"), ("homes_energy_years", "home-years"),
          ("pue", "ratio"), ("mwh", "MWh"), ("year", "year"), ("_tco2eq", "tCO2eq"))


def unit(field: str) -> str:
    last = field.rsplit(".", 1)[-1]
    return next((u for suffix, u in _UNITS if last.endswith(suffix)), "")


def _item_id(d: Mapping[str, Any]) -> str:
    return "/".join(str(d[k]) for k in _ID_KEYS if isinstance(d.get(k), str | int) and not isinstance(d[k], bool))


def _walk(value: Any, item: str, path: list[str]) -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int | float):
        yield item, ".".join(path), value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, item, [*path, str(k)])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, Mapping):
                sub = _item_id(v) or str(i)
                yield from _walk(v, f"{item}/{sub}" if item else sub, path)
            else:
                yield from _walk(v, item, [*path, str(i)])


def rows(report: Report | Mapping[str, Any]) -> Iterator[tuple[str, str, str, Any, str]]:
    """(section, item, field, value, unit) of every number of the report (typed, or the JSON report as a dict)."""
    data = report.to_dict() if isinstance(report, Report) else report
    for section, value in data.items():
        for item, field, v in _walk(value, "", []):
            yield section, item, field, v, unit(field or section)


def render(report: Report | Mapping[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows(report):
        w.writerow([csv_cell(r[0]), csv_cell(r[1]), csv_cell(r[2]), repr(r[3]) if isinstance(r[3], float) else r[3],
                    csv_cell(r[4])])
    return buf.getvalue()
