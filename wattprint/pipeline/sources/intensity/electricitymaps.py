"""Electricity Maps: hourly CSV exports and v3 API responses (history, past-range, latest).

Values are gCO2eq/kWh; each record covers [datetime, datetime + granularity), hourly unless the
response says otherwise. Electricity Maps' default emission factors are life-cycle.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ...errors import InputError
from ...records import IntensityPoint
from ...timeutil import parse_instant, plus
from ._common import ParseResult, check_basis, csv_rows, get, instant, json_where, number, require_zone

SOURCE = "electricitymaps"
HOUR = timedelta(hours=1)
GRANULARITY = {"5_minutes": timedelta(minutes=5), "15_minutes": timedelta(minutes=15), "hourly": HOUR,
               "daily": timedelta(days=1)}

# Header keys after _norm(): lower case, CO₂ -> co2, single spaces.
_DATETIME = "datetime (utc)"
_ZONE = "zone id"
_ESTIMATED = "data estimated"
_INTENSITY = {
    "direct": ("carbon intensity gco2eq/kwh (direct)",),
    "lifecycle": ("carbon intensity gco2eq/kwh (life cycle)", "carbon intensity gco2eq/kwh (lca)"),
}
_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


def _norm(header: str) -> str:
    return " ".join(header.replace("\u2082", "2").strip().lower().split())


def _truthy(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no", ""):
        return False
    raise InputError(where, f"'Data estimated' is {value!r}", "expected true or false")


def _csv_time(value: str, where: str) -> datetime:
    """The export's 'Datetime (UTC)': naive values are UTC because the header says so (only here)."""
    s = value.strip()
    if _NAIVE.match(s):
        try:
            return datetime.fromisoformat(s.replace(" ", "T")).replace(tzinfo=UTC)
        except ValueError:
            raise InputError(where, f"{s!r} is not a valid date and time", "use e.g. 2023-01-01 00:00:00") from None
    return parse_instant(s, where)


def parse_csv(text: str, name: str, *, zone: str | None = None, basis: str | None = None) -> ParseResult:
    """An Electricity Maps hourly CSV export (both the current and the older header spelling)."""
    b = check_basis(basis, ("lifecycle", "direct"), default="lifecycle")
    rows = csv_rows(text, name)
    first = next(rows, None)
    if first is None:
        raise InputError(name, "file is empty", "export the data again")
    header_line, header = first
    cols = {_norm(h): i for i, h in enumerate(header)}
    i_time = cols.get(_DATETIME)
    i_val = next((cols[k] for k in _INTENSITY[b] if k in cols), None)
    label = "Carbon intensity gCO2eq/kWh " + ("(direct)" if b == "direct" else "(Life cycle) or (LCA)")
    missing = [lab for lab, idx in (("Datetime (UTC)", i_time), (label, i_val)) if idx is None]
    if missing:
        other = "; it may carry only the other basis: try --basis direct/lifecycle" if i_time is not None else ""
        raise InputError(f"{name}:{header_line}", f"missing column(s) {', '.join(missing)}",
                         "use an Electricity Maps hourly export (or the generic 'csv' format)" + other)
    assert i_time is not None and i_val is not None
    i_zone, i_est = cols.get(_ZONE), cols.get(_ESTIMATED)
    if i_zone is None and zone is None:
        require_zone(zone, f"{name}:{header_line}", "electricitymaps-csv (no 'Zone id' column)")
    points: list[IntensityPoint] = []
    for line, fields in rows:
        where = f"{name}:{line}"
        if len(fields) != len(header):
            raise InputError(where, f"expected {len(header)} fields, got {len(fields)}", "fix the row or re-export")
        start = _csv_time(fields[i_time], where)
        z = zone or (fields[i_zone].strip() if i_zone is not None else "")
        if not z:
            raise InputError(where, "empty 'Zone id'", "pass --zone")
        points.append(IntensityPoint(
            zone=z, start=start, end=plus(start, HOUR, where), g_per_kwh=number(fields[i_val], where),
            basis=b, source=SOURCE,
            is_estimated=_truthy(fields[i_est], where) if i_est is not None else False, origin=where,
        ))
    if not points:
        raise InputError(name, "no data rows after the header", "export a non-empty time range")
    return ParseResult(points)


def _records(obj: Any, name: str) -> tuple[str, list[Any]]:
    if isinstance(obj, dict) and "carbonIntensity" in obj:   # /latest and /past: one record
        return "", [obj]
    for key in ("history", "data"):
        if isinstance(obj, dict) and key in obj:
            return key, get(obj, key, name, "", kind=list)
    raise InputError(name, "no 'history' or 'data' list in the response",
                     "expected an Electricity Maps /v3/carbon-intensity/history or /past-range response")


def parse_obj(obj: Any, name: str, *, zone: str | None = None, basis: str | None = None,
              empty_ok: bool = False) -> ParseResult:
    """A decoded /v3/carbon-intensity/{history,past-range,latest,past} response."""
    want = check_basis(basis, ("lifecycle", "direct"), default="lifecycle") if basis else None
    key, records = _records(obj, name)
    top_zone = obj.get("zone") if isinstance(obj, dict) else None
    points: list[IntensityPoint] = []
    for i, rec in enumerate(records):
        path = f"{key}[{i}]" if key else ""
        where = json_where(name, path)
        when = instant(get(rec, "datetime", name, path), json_where(name, f"{path}.datetime".lstrip(".")))
        value = number(get(rec, "carbonIntensity", name, path),
                       json_where(name, f"{path}.carbonIntensity".lstrip(".")))
        factor = rec.get("emissionFactorType") or "lifecycle"
        if factor not in ("lifecycle", "direct"):
            raise InputError(json_where(name, f"{path}.emissionFactorType".lstrip(".")),
                             f"unknown emissionFactorType {factor!r}", "expected lifecycle or direct")
        if want and factor != want:
            raise InputError(where, f"record is {factor}, but --basis {want} was asked for",
                             f"fetch with emissionFactorType={want} or drop --basis")
        gran = rec.get("temporalGranularity") or "hourly"
        if not isinstance(gran, str) or gran not in GRANULARITY:
            raise InputError(json_where(name, f"{path}.temporalGranularity".lstrip(".")),
                             f"unsupported granularity {gran!r}", "use hourly (or 5/15-minute, daily) data")
        z = zone or rec.get("zone") or top_zone
        z = require_zone(z if isinstance(z, str) else None, where, "electricitymaps-json")
        notes = (f"estimated: {rec['estimationMethod']}",) if rec.get("estimationMethod") else ()
        points.append(IntensityPoint(
            zone=z, start=when, end=plus(when, GRANULARITY[gran], where), g_per_kwh=value, basis=factor, source=SOURCE,
            is_estimated=bool(rec.get("isEstimated")), origin=where, notes=notes,
        ))
    if not points and not empty_ok:
        raise InputError(name, "the response holds no records", "ask for a time range with data")
    return ParseResult(points)
