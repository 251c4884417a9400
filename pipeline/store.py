"""Write parsed jobs and intensity into DuckDB: delete the keys being imported, insert, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from .db import run_sql
from .records import IntensityPoint, JobRecord


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
            " origin) SELECT cluster, job_id, project, phase, user_name, name, account, start_ts, end_ts, source,"
            " origin FROM import_jobs"
        )
        con.execute("INSERT INTO job_nodes (cluster, job_id, node, gpus) SELECT * FROM import_job_nodes")
    finally:
        con.unregister("import_jobs")
        con.unregister("import_job_nodes")
    return StoreResult(len(records), int(replaced))


def write_intensity(con: duckdb.DuckDBPyConnection, points: Sequence[IntensityPoint]) -> StoreResult:
    """Insert or replace hourly intensity for the (zone, hour)s the points cover."""
    if not points:
        return StoreResult(0, 0)
    table = pa.table({
        "zone": [p.zone for p in points],
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
        run_sql(con, "stg_intensity_import")
        replaced = con.execute(
            "SELECT count(*) FROM intensity_hourly h JOIN intensity_import_hours i USING (zone, hour_ts)"
        ).fetchall()[0][0]
        con.execute(
            "DELETE FROM intensity_hourly WHERE (zone, hour_ts) IN (SELECT (zone, hour_ts) FROM intensity_import_hours)"
        )
        written = con.execute(
            "INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin)"
            " SELECT zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin"
            " FROM intensity_import_hours"
        ).fetchall()[0][0]
        con.execute("DROP TABLE intensity_import_hours")
    finally:
        con.unregister("import_points")
    return StoreResult(int(written), int(replaced))
