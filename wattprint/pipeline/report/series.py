"""The report's series over time: daily energy and emissions, and hourly power and grid intensity (the charts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb

from ..timeutil import iso
from .layers import Sums
from .query import rows
from .scope import ReportOptions, ts
from .types import Day, Hour


def daily(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> tuple[Day, ...]:
    """Per UTC day of the scope: GPU and host energy, and the headline's emissions."""
    out = []
    for r in rows(con, "rpt_sums_by_day"):
        s = Sums.of(r)
        out.append(Day(date=(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=int(r["day"]))).date().isoformat(),
                       energy_kwh=s.energy_j / 3.6e6, cpu_energy_kwh=s.cpu_j / 3.6e6, emissions_kg=s.headline_kg(o)))
    return tuple(out)


def hourly(con: duckdb.DuckDBPyConnection) -> tuple[Hour, ...]:
    """Per (hour, cluster, zone) of the scope: GPU and host power, and the intensity its energy was priced with."""
    return tuple(Hour(hour=iso(ts(r["hour_ts"])), cluster=r["cluster"], zone=r["zone"], power_w=float(r["power_w"]),
                      cpu_power_w=float(r["cpu_power_w"]), intensity_g_per_kwh=float(r["intensity_g_per_kwh"]))
                 for r in rows(con, "rpt_hourly"))
