"""Rebuild the derived tables (streams, intervals, gaps, the fct_* results, node_rapl_hour) from what is stored.

Everything derived is recomputed from samples, jobs and intensity in one transaction, so the
result never depends on the order imports ran in, and a failed build leaves the last good one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb

from .db import run_sql, transaction
from .sources.intensity.embedded import AnnualIntensity

DERIVED = ("fct_gpu_hour", "fct_job_gpu_hour", "fct_job_cpu_hour", "fct_job_cpu_time_hour", "node_rapl_hour",
           "gpu_held_hour", "energy_gaps", "gpu_coverage", "stream_spans", "energy_intervals", "streams")


@dataclass(frozen=True)
class ClusterFacts:
    name: str
    provider: str | None = None
    region: str | None = None
    zone: str | None = None
    pue: float | None = None
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BuildSettings:
    clusters: tuple[ClusterFacts, ...] = ()
    default_cluster: str = "default"
    max_gap_s: int = 300
    nearest_hour_bound_h: float = 3.0
    world_g_per_kwh: float = 0.0
    annual: tuple[AnnualIntensity, ...] = field(default=())
    config_path: str | None = None


@dataclass(frozen=True)
class BuildSummary:
    intervals: int           # energy intervals, GPU and host
    gaps: int
    fct_rows: int            # fct_job_gpu_hour: the GPU figures
    energy_j: float
    emissions_g: float
    cpu_rows: int = 0        # fct_job_cpu_hour: host (CPU package and DRAM) energy
    cpu_energy_j: float = 0.0
    cpu_emissions_g: float = 0.0
    cpu_seconds: float = 0.0  # fct_job_cpu_time_hour: the jobs' CPU time


def load_reference(con: duckdb.DuckDBPyConnection, s: BuildSettings) -> None:
    """Cluster config and the annual intensity table, as used by this build."""
    con.execute("DELETE FROM clusters")
    con.execute("DELETE FROM cluster_nodes")
    con.execute("DELETE FROM intensity_annual")
    for c in s.clusters:
        con.execute(
            "INSERT INTO clusters (cluster, provider, region, zone, pue, pue_known) VALUES (?, ?, ?, ?, ?, ?)",
            [c.name, c.provider, c.region, c.zone, c.pue if c.pue is not None else 1.0, c.pue is not None],
        )
    if s.annual:
        con.executemany(
            "INSERT INTO intensity_annual (zone, kind, name, g_per_kwh, year, basis, source, licence)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [[a.zone, a.kind, a.name, a.g_per_kwh, a.year, a.basis, a.source, a.licence] for a in s.annual],
        )
    if any(c.nodes for c in s.clusters):
        con.executemany("INSERT INTO cluster_nodes (cluster, pattern, ord) VALUES (?, ?, ?)",
                        [list(r) for r in _renumber_cluster_nodes(s.clusters)])


def _renumber_cluster_nodes(clusters: Sequence[ClusterFacts]) -> list[tuple[str, str, int]]:
    """Patterns in config order across clusters: the first cluster listed wins a host."""
    out, n = [], 0
    for c in clusters:
        for p in c.nodes:
            out.append((c.name, p, n))
            n += 1
    return out


def build(con: duckdb.DuckDBPyConnection, s: BuildSettings) -> BuildSummary:
    """Rebuild everything derived, in its own transaction."""
    with transaction(con):
        return rebuild(con, s)


def rebuild(con: duckdb.DuckDBPyConnection, s: BuildSettings) -> BuildSummary:
    """Rebuild inside the caller's transaction (imports use this so data and results commit together)."""
    load_reference(con, s)
    derive_intervals(con, s)
    return derive_results(con, s)


def derive_intervals(con: duckdb.DuckDBPyConnection, s: BuildSettings) -> None:
    """samples -> streams, energy_intervals, energy_gaps, which source measures each GPU when (gpu_coverage); and what
    is read from samples without pricing: the jobs' CPU time per hour (fct_job_cpu_time_hour, with the ledger's
    facts), the time each job held each GPU (gpu_held_hour) and RAPL readability (node_rapl_hour)."""
    for table in DERIVED:
        con.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names, no input
    run_sql(con, "macros")
    run_sql(con, "stg_series_stream", {"default_cluster": s.default_cluster})
    run_sql(con, "stg_streams")
    run_sql(con, "stg_counter_deltas")
    run_sql(con, "stg_intervals_counter", {"max_gap_s": s.max_gap_s})
    run_sql(con, "stg_counter_stepbacks")
    con.execute("UPDATE energy_intervals SET energy_j = 0, quality = 'counter_stepback'"
                " WHERE (stream_id, end_ts) IN (SELECT (stream_id, end_ts) FROM counter_stepbacks)")
    run_sql(con, "stg_stream_spans")
    run_sql(con, "stg_gpu_coverage")
    run_sql(con, "stg_intervals_power", {"max_gap_s": s.max_gap_s})
    run_sql(con, "stg_stream_spans")
    run_sql(con, "stg_gaps", {"max_gap_s": s.max_gap_s})
    run_sql(con, "fct_job_cpu_time_hour", {"max_gap_s": s.max_gap_s})
    run_sql(con, "stg_gpu_held_hour", {"max_gap_s": s.max_gap_s})
    run_sql(con, "fct_node_rapl_hour")
    con.execute("DROP MACRO TABLE IF EXISTS counter_deltas")
    for temp in ("series_stream", "counter_stepbacks"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")


def derive_results(con: duckdb.DuckDBPyConnection, s: BuildSettings) -> BuildSummary:
    """streams + energy_intervals + jobs + intensity -> fct_job_gpu_hour (GPUs), fct_job_cpu_hour (host) and the
    reconciliation of every GPU-hour against its hardware counter (fct_gpu_hour)."""
    con.execute("DELETE FROM fct_job_gpu_hour")
    con.execute("DELETE FROM fct_job_cpu_hour")
    con.execute("DELETE FROM fct_gpu_hour")
    run_sql(con, "macros")
    run_sql(con, "int_node_allocations")
    run_sql(con, "int_hourly_pieces")
    run_sql(con, "int_balance_pieces")
    con.execute("CREATE OR REPLACE TEMP TABLE intensity_needed AS"
                " SELECT DISTINCT coalesce(c.zone, '') AS zone, h.hour_idx FROM hourly_pieces h"
                " JOIN streams st USING (stream_id) LEFT JOIN clusters c USING (cluster)")
    run_sql(con, "int_intensity_resolved",
            {"bound_h": s.nearest_hour_bound_h, "world_g_per_kwh": s.world_g_per_kwh})
    run_sql(con, "int_priced_pieces")
    run_sql(con, "fct_job_gpu_hour")
    run_sql(con, "fct_job_cpu_hour")
    run_sql(con, "fct_gpu_hour")
    con.execute("DROP VIEW IF EXISTS priced_pieces")
    row = con.execute(
        "SELECT (SELECT count(*) FROM energy_intervals), (SELECT count(*) FROM energy_gaps),"
        " count(*), coalesce(sum(energy_j), 0), coalesce(sum(emissions_g), 0) FROM fct_job_gpu_hour"
    ).fetchall()[0]
    cpu = con.execute(
        "SELECT count(*), coalesce(sum(energy_j), 0), coalesce(sum(emissions_g), 0),"
        " (SELECT coalesce(sum(cpu_seconds), 0) FROM fct_job_cpu_time_hour) FROM fct_job_cpu_hour"
    ).fetchall()[0]
    con.execute(
        "INSERT INTO build_info (built_at, config_path, intervals, fct_rows, world_g_per_kwh)"
        " VALUES (now(), ?, ?, ?, ?)",
        [s.config_path, row[0], row[2], s.world_g_per_kwh],
    )
    for temp in ("hourly_pieces", "balance_pieces", "alloc_segments", "intensity_needed", "intensity_resolved"):
        con.execute(f"DROP TABLE IF EXISTS {temp}")
    return BuildSummary(int(row[0]), int(row[1]), int(row[2]), float(row[3]), float(row[4]),
                        int(cpu[0]), float(cpu[1]), float(cpu[2]), float(cpu[3]))
