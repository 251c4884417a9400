"""Which UTC hours of the results an import changes: what model.rebuild_hours rebuilds after it.

One range of hours [lo, hi) (hour indexes since 1970), the smallest one holding every hour whose results can move:
rebuilding more hours than changed is exact, only slower. The randomised test (tests/test_model_incremental.py)
holds each rule against a build from scratch.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from .db import run_sql, tables
from .records import IntensityPoint, intensity_signal
from .timeutil import month_start_hour, next_month_hour

Hours = tuple[int, int] | None


def union(a: Hours, b: Hours) -> Hours:
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), max(a[1], b[1])


def jobs(con: duckdb.DuckDBPyConnection, keys: Iterable[tuple[str, str]]) -> Hours:
    """The hours the ledger rows of these (cluster, job_id) reach, as stored now: call it before and after writing
    them. A job's rows reach the hours of its span (its allocations: node shares, residual shares), and every hour
    its own energy or CPU time was measured in (its project and phase are joined onto those rows whatever the span
    says), by the exporter's job counters or by dcgm's job label. A running job reaches every hour from its start."""
    rows = list(dict.fromkeys(keys))
    if not rows or not built(con):
        return None       # nothing to rebuild, or no results yet (the build is a full one then)
    con.execute("CREATE OR REPLACE TEMP TABLE dirty_jobs (cluster VARCHAR, job_id VARCHAR)")
    # one statement for all keys: a month of sacct holds tens of thousands (executemany is a round trip per row)
    con.execute("INSERT INTO dirty_jobs SELECT unnest(?::VARCHAR[]), unnest(?::VARCHAR[])",
                [[k[0] for k in rows], [k[1] for k in rows]])
    try:
        lo, hi = run_sql(con, "dirty_job_hours").fetchall()[0]
    finally:
        con.execute("DROP TABLE dirty_jobs")
    return None if lo is None else (int(lo), int(min(hi, 2**62 // 3600000000)))


def built(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the derived tables these rules read are there."""
    return {"streams", "stream_spans", "cpu_time_hour", "energy_intervals"} <= tables(con)


def intensity(points: Iterable[IntensityPoint], bound_h: float) -> Hours:
    """The hours an import of intensity points can move: every hour of the months it touches, widened by the
    nearest-hour bound (an hour without data takes the nearest one within it, else the zone's monthly mean).
    Marginal points move none: the model prices with the average signal only (macros_intensity.sql)."""
    pts = [p for p in points if intensity_signal(p.basis) == "average"]
    if not pts:
        return None
    margin = int(bound_h * 3600) + 3600
    lo = min(int(p.start.timestamp()) for p in pts) - margin
    hi = max(int(p.end.timestamp()) for p in pts) + margin
    return month_start_hour(lo // 3600), next_month_hour(hi // 3600)

