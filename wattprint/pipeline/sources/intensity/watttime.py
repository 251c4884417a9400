"""WattTime v3 `/v3/historical` responses: marginal operating emission rates (co2_moer).

`data[{point_time, value, imputed_data_used?}]`, `meta{units, signal_type, region, data_point_period_seconds}`.
Values in lbs CO2/MWh become g/kWh (x 453.59237 / 1000). Basis is `marginal`: not comparable to average intensity.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ...errors import InputError
from ...records import IntensityPoint
from ...timeutil import plus
from ._common import (
    MOER_WARNING,
    ParseResult,
    check_basis,
    check_value,
    get,
    instant,
    json_where,
    require_zone,
    to_float,
)

SOURCE = "watttime"
G_PER_LB = 453.59237
UNITS = {"lbs_co2_per_mwh": G_PER_LB / 1000.0}   # to g/kWh
DEFAULT_PERIOD_S = 300
MAX_PERIOD_S = 86400   # WattTime publishes 5-minute points; a day is already far off


def parse_obj(obj: Any, name: str, *, zone: str | None = None, basis: str | None = None,
              empty_ok: bool = False) -> ParseResult:
    check_basis(basis, ("marginal",), default="marginal")
    meta = get(obj, "meta", name, "", kind=dict)
    units = get(meta, "units", name, "meta", kind=str)
    if units not in UNITS:
        raise InputError(json_where(name, "meta.units"), f"unknown units {units!r}",
                         f"wattprint converts {', '.join(UNITS)}; ask WattTime for those units")
    signal = meta.get("signal_type", "co2_moer")
    if signal != "co2_moer":
        raise InputError(json_where(name, "meta.signal_type"), f"unsupported signal_type {signal!r}",
                         "fetch signal_type=co2_moer")
    period_s = meta.get("data_point_period_seconds", DEFAULT_PERIOD_S)
    if isinstance(period_s, bool) or not isinstance(period_s, int) or not 0 < period_s <= MAX_PERIOD_S:
        raise InputError(json_where(name, "meta.data_point_period_seconds"), f"invalid period {period_s!r}",
                         f"expected a whole number of seconds from 1 to {MAX_PERIOD_S}")
    region = meta.get("region")
    z = require_zone(zone or (region if isinstance(region, str) else None), name, "watttime-json (no meta.region)")
    factor = UNITS[units]
    period = timedelta(seconds=period_s)
    points: list[IntensityPoint] = []
    for i, rec in enumerate(get(obj, "data", name, "", kind=list)):
        path = f"data[{i}]"
        start = instant(get(rec, "point_time", name, path), json_where(name, f"{path}.point_time"))
        where = json_where(name, f"{path}.value")
        value = check_value(to_float(get(rec, "value", name, path), where, "value") * factor, where)
        points.append(IntensityPoint(
            zone=z, start=start, end=plus(start, period, json_where(name, path)), g_per_kwh=value,
            basis="marginal", source=SOURCE,
            is_estimated=bool(rec.get("imputed_data_used")), origin=json_where(name, path), notes=(MOER_WARNING,),
        ))
    if not points and not empty_ok:
        raise InputError(name, "the response holds no data points", "ask for a time range with data")
    return ParseResult(points, [MOER_WARNING])
