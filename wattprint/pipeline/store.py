"""Write parsed jobs and intensity into DuckDB: delete the keys being imported, insert, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import datetime

import duckdb
import pyarrow as pa

from .db import run_sql
from .errors import InputError
from .records import IntensityPoint, JobRecord, intensity_signal
from .timeutil import iso
from .zones import canonical_zone


@dataclass(frozen=True)
class StoreResult:
    written: int
    replaced: int


def write_jobs(con: duckdb.DuckDBPyConnection, records: Sequence[JobRecord]) -> StoreResult:
    """Insert or replace jobs by (cluster, job_id); a job's node list is replaced with it."""
    if not records:
        return StoreResult(0, 0)
    jobs = pa.table({
        "cluster": [r.cluster for r in records],
        "job_id": [r.job_id for r in records],
        "project": [r.project for r in records],
        "phase": [r.phase for r in records],
        "user_name": [r.user or None for r in records],
        "name": [r.name or None for r in records],
        "account": [r.account or None for r in records],
        "start_ts": pa.array([r.start for r in records], pa.timestamp("us", tz="UTC")),
        "end_ts": pa.array([r.end for r in records], pa.timestamp("us", tz="UTC")),
        "source": [r.source for r in records],
        "origin": [r.origin for r in records],
        "units": pa.array([r.units for r in records], pa.float64()),
        "unit_name": pa.array([r.unit_name or None for r in records], pa.string()),
    })
    nodes = [(r.cluster, r.job_id, n, r.gpus_per_node) for r in records for n in r.nodes]
    job_nodes = pa.table({
        "cluster": [n[0] for n in nodes], "job_id": [n[1] for n in nodes], "node": [n[2] for n in nodes],
        "gpus": pa.array([n[3] for n in nodes], pa.int32()),
    })
    con.register("import_jobs", jobs)
    con.register("import_job_nodes", job_nodes)
    try:
        replaced = con.execute(
            "SELECT count(*) FROM jobs j JOIN import_jobs i USING (cluster, job_id)"
        ).fetchall()[0][0]
        con.execute("DELETE FROM job_nodes WHERE (cluster, job_id) IN (SELECT (cluster, job_id) FROM import_jobs)")
        con.execute("DELETE FROM jobs WHERE (cluster, job_id) IN (SELECT (cluster, job_id) FROM import_jobs)")
        con.execute(
            "INSERT INTO jobs (cluster, job_id, project, phase, user_name, name, account, start_ts, end_ts, source,"
            " origin, units, unit_name) SELECT cluster, job_id, project, phase, user_name, name, account, start_ts,"
            " end_ts, source, origin, units, unit_name FROM import_jobs"
        )
        con.execute("INSERT INTO job_nodes (cluster, job_id, node, gpus) SELECT * FROM import_job_nodes")
    finally:
        con.unregister("import_jobs")
        con.unregister("import_job_nodes")
    return StoreResult(len(records), int(replaced))


@dataclass(frozen=True)
class IntensityStoreResult:
    """What an intensity import changed, over both signals. Zone-hours: the hours of intensity_hourly and
    marginal_hourly the import wrote (each one recomputed from all points it holds), of which `replaced` were stored
    before. Points: the stored points the import overlapped, `points_replaced` of them wholly and `points_trimmed`
    partly (what it did not cover is kept)."""

    written: int
    replaced: int
    points_written: int = 0
    points_replaced: int = 0
    points_trimmed: int = 0


# Each intensity signal's stored tables, (points, hours) (migrations/0010_intensity_signals.sql). The average signal
# is what the model prices with; the marginal one only the report's marginal section reads. Table names come from
# here only, never from input, so they are written into the statements (and bound as `query_table` names).
SIGNAL_TABLES = {"average": ("intensity_points", "intensity_hourly"),
                 "marginal": ("marginal_points", "marginal_hourly")}


def write_intensity(con: duckdb.DuckDBPyConnection, points: Sequence[IntensityPoint]) -> IntensityStoreResult:
    """Store the points (canonical zones, checked with check_points) and recompute the zone-hours they touch.

    Each point belongs to a signal by its basis (records.intensity_signal): average (lifecycle, direct) or marginal
    (WattTime co2_moer), each with its own two tables (SIGNAL_TABLES), so a marginal import never touches a zone's
    average data nor the other way round. Within a signal, the import replaces only the stored parts it overlaps
    (older points are clipped to what it does not cover, per zone); each touched (zone, hour) becomes the
    time-weighted mean of every stored point in it, `covered_s` their union, so partial hours from several imports
    combine by their coverage. Points of different bases of one signal (lifecycle and direct) that would share an
    hour are an InputError (nothing is written; the caller's transaction rolls back anything else). The counts of
    the result add up over the signals.
    """
    out = IntensityStoreResult(0, 0)
    for signal, (points_table, hourly_table) in SIGNAL_TABLES.items():
        mine = [p for p in points if intensity_signal(p.basis) == signal]
        if mine:
            r = _write_signal(con, mine, points_table, hourly_table)
            out = IntensityStoreResult(*(a + b for a, b in zip(astuple(out), astuple(r), strict=True)))
    return out


def _write_signal(con: duckdb.DuckDBPyConnection, points: Sequence[IntensityPoint], points_table: str,
                  hourly_table: str) -> IntensityStoreResult:
    """write_intensity for the points of one signal, on that signal's tables."""
    table = pa.table({
        "zone": [canonical_zone(p.zone) for p in points],
        "start_ts": pa.array([p.start for p in points], pa.timestamp("us", tz="UTC")),
        "end_ts": pa.array([p.end for p in points], pa.timestamp("us", tz="UTC")),
        "g_per_kwh": pa.array([p.g_per_kwh for p in points], pa.float64()),
        "basis": [p.basis for p in points],
        "source": [p.source for p in points],
        "is_estimated": pa.array([p.is_estimated for p in points], pa.bool_()),
        "origin": [p.origin for p in points],
    })
    con.register("import_points", table)
    try:
        run_sql(con, "macros")              # the hour split (hours_of, hour_overlap_us) the import shares
        run_sql(con, "stg_intensity_import", {"points": points_table, "hourly": hourly_table})
        run_sql(con, "stg_intensity_import_hours")
        mixed = con.execute(
            "SELECT zone, hour_ts, basis, basis_origin, basis_new, other_basis, other_basis_origin, other_basis_new"
            " FROM intensity_import_hours WHERE bases > 1 ORDER BY zone, hour_ts LIMIT 1"
        ).fetchall()
        if mixed:
            _refuse_mixed_bases(*mixed[0])
        (removed, trimmed) = con.execute(
            "SELECT count(*) FILTER (WHERE NOT trimmed), count(*) FILTER (WHERE trimmed) FROM ("
            " SELECT (zone, start_ts) IN (SELECT (zone, from_ts) FROM intensity_import_plan WHERE action = 'piece')"
            " AS trimmed FROM intensity_import_plan WHERE action = 'removed')"
        ).fetchall()[0]
        con.execute(
            f"DELETE FROM {points_table} WHERE (zone, start_ts) IN"
            " (SELECT (zone, start_ts) FROM intensity_import_plan WHERE action = 'removed' AND stored)"
        )
        con.execute(
            f"INSERT INTO {points_table} (zone, start_ts, end_ts, g_per_kwh, basis, source, is_estimated, origin,"
            " imported_at) SELECT zone, start_ts, end_ts, g_per_kwh, basis, source, is_estimated, origin,"
            " coalesce(imported_at, now()) FROM intensity_import_plan"
            " WHERE action IN ('new', 'piece') OR (action = 'kept' AND NOT stored)"
        )
        replaced = con.execute(
            f"SELECT count(*) FROM {hourly_table} h JOIN intensity_import_hours i USING (zone, hour_ts)"
        ).fetchall()[0][0]
        con.execute(
            f"DELETE FROM {hourly_table} WHERE (zone, hour_ts) IN (SELECT (zone, hour_ts) FROM intensity_import_hours)"
        )
        written = con.execute(
            f"INSERT INTO {hourly_table} (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin)"
            " SELECT zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin"
            " FROM intensity_import_hours"
        ).fetchall()[0][0]
    finally:
        con.execute("DROP TABLE IF EXISTS intensity_import_hours")
        con.execute("DROP TABLE IF EXISTS intensity_import_plan")
        con.unregister("import_points")
    return IntensityStoreResult(int(written), int(replaced), len(points), int(removed), int(trimmed))


def _refuse_mixed_bases(zone: str, hour: datetime, basis: str, origin: str, is_new: bool, other: str,
                        other_origin: str, other_new: bool) -> None:
    def side(b: str, where: str, new: bool) -> str:
        return f"{b} intensity {'of this import' if new else 'stored'} at {where}"

    both_new = is_new and other_new
    raise InputError(
        origin if is_new else other_origin,
        f"zone {zone}, hour {iso(hour)}: {side(basis, origin, is_new)} and {side(other, other_origin, other_new)} "
        "would be averaged in one hour, and bases do not mix",
        "import one basis per zone" if both_new else
        "import the same basis as the stored data (e.g. --basis), or cover the whole hour so the import replaces it",
    )
