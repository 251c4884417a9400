"""Build the derived tables from what is stored: the runner and the model graph.

Every derived table is one query in wattprint/pipeline/sql/<table>.sql (the file name is the table's name), built
here in the order of MODELS, each from the stored inputs (series, samples, ingest coverage, jobs, job nodes,
intensity, the config's clusters) and the tables before it. `table` models are kept in the database for the
reports; `temp` ones live for the build only. Macros (macros*.sql) hold the rules several models share.
Everything is recomputed in the caller's transaction, so the result never depends on the order imports ran in,
and a failed build leaves the last good one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from .db import sql_text, tables, transaction
from .sources.intensity.embedded import AnnualIntensity
from .timeutil import month_starts, next_month_hour


@dataclass(frozen=True)
class Model:
    """One derived table: sql/<name>.sql, a query over the stored inputs and the models before it."""

    name: str
    kind: str = "table"                 # table: kept in the database; temp: a table for this build only; view: a
                                        # temp view (read once, by the models after it); macro: macros a later model
                                        # uses (the file creates them, after the tables they read)
    params: tuple[str, ...] = ()        # the $names the query binds, from BuildSettings.params()


MACROS = (Model("macros", "macro"), Model("macros_intensity", "macro"))
INTERVALS = (
    # samples -> streams and energy per interval
    Model("stg_series_stream", "temp", ("default_cluster",)),
    Model("macros_counter_deltas", "macro"),
    Model("streams"),
    Model("stg_counter_intervals", "temp", ("max_gap_s",)),
    Model("gpu_coverage"),
    Model("stg_power_intervals", "temp", ("max_gap_s",)),
    Model("energy_intervals"),
    Model("stream_spans"),
    Model("energy_gaps", params=("max_gap_s",)),
    # read from samples without pricing
    Model("cpu_time_hour", params=("max_gap_s",)),
    Model("gpu_held_hour", params=("max_gap_s",)),
    Model("gpu_held_idle_hour", params=("max_gap_s",)),
    Model("node_rapl_hour"),
    Model("node_hour", params=("max_gap_s",)),
)
EVAL, OUT = ("eval_lo_h", "eval_hi_h"), ("out_lo_h", "out_hi_h")
RESULTS = (
    # intervals + ledger + intensity -> the priced results, for the hours [out_lo_h, out_hi_h)
    Model("int_node_allocations", "temp"),
    Model("int_hourly_pieces", "temp", EVAL),
    Model("int_balance_pieces", "temp"),
    Model("int_intensity_needed", "temp", EVAL),
    Model("int_intensity_resolved", "temp", ("bound_h", "world_g_per_kwh")),
    Model("int_priced_pieces", "view"),
    Model("fct_job_gpu_hour", params=OUT),
    Model("fct_job_gpu_held_idle_hour", params=OUT),
    Model("fct_job_cpu_hour", params=OUT),
    Model("fct_job_cpu_time_hour", params=OUT),
    Model("fct_gpu_hour", params=OUT),
    # the node layer: the BMC's node energy less the GPU boards and RAPL, shared among the jobs and node idle
    Model("fct_node_hour", params=OUT),
    Model("fct_job_node_hour", params=OUT),
)
# every hour there is: what a full build makes (UTC hours since 1970; about 1856 to 3110)
ALL_HOURS = (-1_000_000, 10_000_000)
MODELS = MACROS + INTERVALS + RESULTS
DERIVED = tuple(m.name for m in MODELS if m.kind == "table")
RESULT_TABLES = tuple(m.name for m in RESULTS if m.kind == "table")


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

    def params(self, out: tuple[int, int] = ALL_HOURS, evaluate: tuple[int, int] = ALL_HOURS) -> dict[str, Any]:
        return {"default_cluster": self.default_cluster, "max_gap_s": self.max_gap_s,
                "bound_h": self.nearest_hour_bound_h, "world_g_per_kwh": self.world_g_per_kwh,
                "out_lo_h": out[0], "out_hi_h": out[1], "eval_lo_h": evaluate[0], "eval_hi_h": evaluate[1]}

    def fingerprint(self) -> str:
        """What the results depend on besides the stored inputs: a change means a full build."""
        facts = (self.clusters, self.default_cluster, self.max_gap_s, self.nearest_hour_bound_h,
                 self.world_g_per_kwh, self.annual)
        return hashlib.sha256(repr(facts).encode()).hexdigest()


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
    """Rebuild everything inside the caller's transaction (imports use this so data and results commit together)."""
    load_reference(con, s)
    run_models(con, MACROS + INTERVALS, s.params())
    _results_by_month(con, s)
    return _summary(con, s)


def _results_by_month(con: duckdb.DuckDBPyConnection, s: BuildSettings) -> None:
    """The result tables made empty, then filled a UTC month at a time: a month's build holds only that month's
    pieces, so the memory a build needs does not grow with the months stored. Each hour is made from every input
    that reaches it (the same as rebuild_hours), and the months are appended in order, each sorted, so the tables
    come out as one build over all hours would make them, row for row and in the same order."""
    closed = closed_before_h(con)
    if closed is None or not set(RESULT_TABLES) <= tables(con):
        run_models(con, MACROS + RESULTS, s.params(out=(0, 0), evaluate=(0, 0)))
    else:       # the closed months' rows stay as they were built (their samples are gone: `wattprint compact`)
        for t in RESULT_TABLES:
            con.execute(f"DELETE FROM {t} WHERE hour_ts >= to_timestamp(CAST(? AS BIGINT) * 3600)",  # noqa: S608
                        [closed])
    for month in _months(con, (open_from(con), ALL_HOURS[1])):
        run_models(con, MACROS + RESULTS, s.params(month, evaluated_hours(con, month)), rebuild_hours=month)


def closed_before_h(con: duckdb.DuckDBPyConnection) -> int | None:
    """The first hour after the months `wattprint compact` closed (hour index since 1970), None if none is."""
    if "closed_months" not in tables(con):
        return None
    (h,) = con.execute(
        "SELECT epoch(max(month_ts) + INTERVAL 1 MONTH)::BIGINT // 3600 FROM closed_months").fetchall()[0]
    return None if h is None else int(h)


def open_from(con: duckdb.DuckDBPyConnection) -> int:
    """The first hour a build may make: after the closed months, or every hour there is."""
    closed = closed_before_h(con)
    return ALL_HOURS[0] if closed is None else closed


def _months(con: duckdb.DuckDBPyConnection, hours: tuple[int, int]) -> list[tuple[int, int]]:
    """The UTC months (as hour ranges) within `hours` that hold data: energy intervals, jobs' CPU time or node (BMC)
    energy."""
    lo, hi = con.execute(
        "SELECT min(h0), max(h1) FROM ("
        " SELECT min(epoch_us(start_ts)) // 3600000000 AS h0, (max(epoch_us(end_ts)) - 1) // 3600000000 + 1 AS h1"
        " FROM energy_intervals UNION ALL SELECT min(hour_idx), max(hour_idx) + 1 FROM cpu_time_hour"
        " UNION ALL SELECT min(hour_idx), max(hour_idx) + 1 FROM node_hour)").fetchall()[0]
    if lo is None:
        return []
    lo, hi = max(int(lo), hours[0]), min(int(hi), hours[1])
    return [(max(m, lo), min(next_month_hour(m), hi)) for m in month_starts(lo, hi)]



def rebuild_hours(con: duckdb.DuckDBPyConnection, s: BuildSettings, hours: tuple[int, int] | None) -> BuildSummary:
    """Rebuild the results of the UTC hours [lo, hi) (hour indexes since 1970) and nothing else: what an import of
    jobs or intensity changed (wattprint/pipeline/dirty.py says which hours). The intervals are not rebuilt (they
    come from samples only), the results outside those hours are kept. Falls back to a full build when there is none
    yet or the settings (clusters, zones, PUE, gap bound, intensity fallbacks) changed since the last one.
    `hours` None: nothing to rebuild (the summary only)."""
    if not built_with(con, s):
        return rebuild(con, s)
    if hours is None or hours[0] >= hours[1]:
        return _summary(con, s, record=False)
    out = (max(hours[0], open_from(con)), min(hours[1], ALL_HOURS[1]))   # closed months are never rebuilt
    load_reference(con, s)
    for month in _months(con, out):        # a month at a time, as a full build: memory bounded by a month
        run_models(con, MACROS + RESULTS, s.params(month, evaluated_hours(con, month)), rebuild_hours=month)
    return _summary(con, s)


def evaluated_hours(con: duckdb.DuckDBPyConnection, out: tuple[int, int]) -> tuple[int, int]:
    """The hours int_hourly_pieces must be made for so that the hours `out` come out as a full build makes them:
    int_balance_pieces.sql corrects an exporter total's hour from its intervals around it, and books a correction on
    every hour of such an interval and on the hour before it. So: the hours of every interval that overlaps `out`,
    and one more on each side."""
    lo, hi = con.execute(
        "SELECT min(epoch_us(start_ts)) // 3600000000, (max(epoch_us(end_ts)) - 1) // 3600000000 + 1"
        " FROM energy_intervals WHERE end_ts > to_timestamp(CAST(? AS BIGINT) * 3600)"
        " AND start_ts < to_timestamp(CAST(? AS BIGINT) * 3600)",
        [out[0], out[1]]).fetchall()[0]
    lo = out[0] if lo is None else min(out[0], int(lo))
    hi = out[1] if hi is None else max(out[1], int(hi))
    return max(lo - 1, ALL_HOURS[0]), min(hi + 1, ALL_HOURS[1])


def built_with(con: duckdb.DuckDBPyConnection, s: BuildSettings) -> bool:
    """Whether every derived table exists and the last build used these settings."""
    if not set(DERIVED) <= tables(con):
        return False
    last = con.execute("SELECT settings_sha256 FROM build_info ORDER BY built_at DESC LIMIT 1").fetchall()
    return bool(last) and last[0][0] == s.fingerprint()


def derive_results(con: duckdb.DuckDBPyConnection, s: BuildSettings) -> BuildSummary:
    """Only the priced results (RESULTS), from the stored intervals: for benchmarks that write intervals directly."""
    _results_by_month(con, s)
    return _summary(con, s)


def materialize(con: duckdb.DuckDBPyConnection, model: Model, params: dict[str, Any], sql: str | None = None,
                hours: tuple[int, int] | None = None) -> None:
    """(Re)create the model's table from its query (or from `sql`, a query standing in for it: tests' references).
    `hours`: a kept table's rows of those hours are replaced, the others kept (its query makes only those)."""
    query = sql if sql is not None else sql_text(model.name)
    if model.kind == "macro":
        con.execute(query)
        return
    bound = {p: params[p] for p in model.params if f"${p}" in query}   # a stand-in query may bind fewer
    if model.kind == "view" and bound:
        raise ValueError(f"{model.name}: a view cannot bind parameters")
    if model.kind == "table" and hours is not None:
        con.execute(f"DELETE FROM {model.name} WHERE hour_ts >= to_timestamp(CAST(? AS BIGINT) * 3600)"  # noqa: S608 - a model name
                    " AND hour_ts < to_timestamp(CAST(? AS BIGINT) * 3600)", list(hours))
        con.execute(f"INSERT INTO {model.name}\n{query}", bound or None)
        return
    kind = {"table": "TABLE", "temp": "TEMP TABLE", "view": "TEMP VIEW"}[model.kind]
    con.execute(f"CREATE OR REPLACE {kind} {model.name} AS\n{query}", bound or None)


def run_models(con: duckdb.DuckDBPyConnection, models: Iterable[Model], params: dict[str, Any],
               rebuild_hours: tuple[int, int] | None = None) -> None:
    """Build `models` in order, then drop the build's temp tables and views. `rebuild_hours`: the kept tables'
    rows of those hours only (the models must be RESULTS', whose queries make those hours)."""
    built = []
    for model in models:
        materialize(con, model, params, hours=rebuild_hours)
        built.append(model)
    for model in reversed(built):
        if model.kind in ("temp", "view"):
            con.execute(f"DROP {'VIEW' if model.kind == 'view' else 'TABLE'} IF EXISTS {model.name}")


def model(name: str) -> Model:
    """The model named `name` (KeyError if there is none)."""
    return {m.name: m for m in MODELS}[name]


def _summary(con: duckdb.DuckDBPyConnection, s: BuildSettings, record: bool = True) -> BuildSummary:
    row = con.execute(
        "SELECT (SELECT count(*) FROM energy_intervals), (SELECT count(*) FROM energy_gaps),"
        " count(*), coalesce(sum(energy_j), 0), coalesce(sum(emissions_g), 0) FROM fct_job_gpu_hour"
    ).fetchall()[0]
    cpu = con.execute(
        "SELECT count(*), coalesce(sum(energy_j), 0), coalesce(sum(emissions_g), 0),"
        " (SELECT coalesce(sum(cpu_seconds), 0) FROM fct_job_cpu_time_hour) FROM fct_job_cpu_hour"
    ).fetchall()[0]
    if record:
        con.execute(
            "INSERT INTO build_info (built_at, config_path, intervals, fct_rows, world_g_per_kwh, settings_sha256)"
            " VALUES (now(), ?, ?, ?, ?, ?)",
            [s.config_path, row[0], row[2], s.world_g_per_kwh, s.fingerprint()],
        )
    return BuildSummary(int(row[0]), int(row[1]), int(row[2]), float(row[3]), float(row[4]),
                        int(cpu[0]), float(cpu[1]), float(cpu[2]), float(cpu[3]))
