"""UK Carbon Intensity API (NESO): national and regional half-hourly intensity.

National `/intensity/{from}/{to}`: `{"data": [{from, to, intensity: {forecast, actual, index}}]}`.
Regional `/regional/intensity/{from}/{to}/regionid/{id}`:
`{"data": {"regionid", "shortname", "data": [{from, to, intensity: {forecast, index}, generationmix}]}}`
(`/regional` without a range returns `data` as a list of such region objects; both are accepted).

Basis is `direct`: the API counts CO2 from electricity generation (metered stations, imports, losses),
not life-cycle emissions. `actual` is used when present; otherwise `forecast`, marked estimated.
Regional data only has forecasts, so every regional point is estimated.
"""

from __future__ import annotations

from typing import Any

from ...errors import InputError
from ...records import IntensityPoint
from ._common import ParseResult, check_basis, get, instant, json_where, number

SOURCE = "uk-carbon-intensity"


def _period(rec: Any, name: str, path: str, zone: str, *, regional: bool) -> IntensityPoint:
    start = instant(get(rec, "from", name, path), json_where(name, f"{path}.from"))
    end = instant(get(rec, "to", name, path), json_where(name, f"{path}.to"))
    if end <= start:
        raise InputError(json_where(name, path), f"'to' {end} is not after 'from' {start}", "fix the record")
    intensity = get(rec, "intensity", name, path, kind=dict)
    actual = None if regional else intensity.get("actual")
    estimated = actual is None
    key = "forecast" if estimated else "actual"
    value = number(intensity.get(key), json_where(name, f"{path}.intensity.{key}"))
    return IntensityPoint(zone=zone, start=start, end=end, g_per_kwh=value, basis="direct", source=SOURCE,
                          is_estimated=estimated, origin=json_where(name, path),
                          notes=("forecast (no actual)",) if estimated else ())


def _region(reg: Any, name: str, path: str, zone: str | None) -> list[IntensityPoint]:
    rid = get(reg, "regionid", name, path, kind=(int, str))
    if isinstance(rid, bool) or not str(rid).strip():
        raise InputError(json_where(name, f"{path}.regionid"), f"region id {rid!r} is not a region",
                         "check this is a UK Carbon Intensity regional response")
    z = zone or f"GB-{str(rid).strip()}"
    rows = get(reg, "data", name, path, kind=list)
    return [_period(r, name, f"{path}.data[{i}]", z, regional=True) for i, r in enumerate(rows)]


def parse_obj(obj: Any, name: str, *, zone: str | None = None, basis: str | None = None,
              empty_ok: bool = False) -> ParseResult:
    check_basis(basis, ("direct",), default="direct")
    data = get(obj, "data", name, "", kind=(list, dict))
    points: list[IntensityPoint] = []
    if isinstance(data, dict):                                   # one region over a range
        points = _region(data, name, "data", zone)
    elif data and isinstance(data[0], dict) and "regionid" in data[0]:   # several regions
        if zone and len(data) > 1:
            raise InputError(name, f"--zone {zone} given but the response holds {len(data)} regions",
                             "import one region per file, or leave out --zone")
        for i, reg in enumerate(data):
            points += _region(reg, name, f"data[{i}]", zone)
    else:                                                        # national
        points = [_period(r, name, f"data[{i}]", zone or "GB", regional=False) for i, r in enumerate(data)]
    if not points and not empty_ok:
        raise InputError(name, "the response holds no half-hours", "ask for a time range with data")
    return ParseResult(points)
