"""Cost of the model's join + aggregate (energy -> per-project/phase/hour emissions) against a bare GROUP BY.

A synthetic fleet is generated straight into a wattprint DuckDB file (pipeline.db.connect applies the
schema) with SQL range(): GPUs on 8-GPU nodes, grouped 4 nodes at a time into `--zones` clusters (one
grid zone each), one 60 s energy interval per GPU per minute on the minute grid (quality 'counter'; a busy
minute draws 300-700 W, i.e. 18-42 kJ, an idle one 60-90 W), `--jobs` jobs laid over the GPUs in lanes of
1, 2, 4, 8 or 32 GPUs (a 32-GPU lane spans 4 nodes; each lane's jobs follow one another with idle gaps, and
their ledger start/end carry a seconds offset as schedulers' do), ~50 projects, the six phases, and hourly
intensity per zone with some hours missing (isolated ones: nearest-hour fallback; one 14-hour outage:
monthly-mean fallback).

Two ways the same energy reaches the model:

  exporter   wattprint's own streams: per GPU one 'idle' stream and per (job, GPU) one 'job' stream;
             each minute of each GPU belongs to exactly one of them.
  dcgm       GPU-level streams (source 'dcgm', kind 'gpu', no job label): the model attributes each
             interval to the ledger's jobs on that node by allocated GPUs (node_share).

Measured, each in a fresh subprocess of this script so that peak RSS (getrusage ru_maxrss) is per phase,
after an untimed scan of energy_intervals (so no phase pays the first read of the file), median of --reps:

  baseline   CREATE TEMP TABLE AS SELECT stream_id, hour, sum(energy_j) FROM energy_intervals GROUP BY ALL,
             the bare aggregate over the same rows;
  wattprint  pipeline.model.derive_results (builds fct_job_gpu_hour) + the per-project/phase/hour rollup
             of fct_job_gpu_hour into a temp table;
  pandas     the same per-project/phase/hour emissions computed the way a user would in pandas: read the
             tables into DataFrames (timed separately as "load"), merge, floor to the hour, resolve the
             intensity with the same fallback chain, groupby.

For the dcgm path the script also profiles int_hourly_pieces.sql (DuckDB's JSON profiler, i.e. EXPLAIN
ANALYZE) and lists the operators that took the time. The scaling series repeats the exporter path over 1, 3
and 12 months (of --month-days days) with jobs in proportion to GPU-time.

Checked in the run, failing loudly otherwise: fct_job_gpu_hour holds all the energy of energy_intervals
(1e-6 relative), and pandas' per-project energy and emissions equal wattprint's (1e-6 relative).

Ratios are measured in this one run; see docs/benchmarks.md for how to read them.

    .venv/bin/python benchmarks/bench_model.py [--gpus 1024 --days 30 --jobs 5000 --zones 5]
        [--scaling-months 1,3,12 --scaling-gpus N] [--skip-pandas] [--db PATH] [--markdown-out PATH] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

T0 = "2024-03-01 00:00:00+00"
ZONES = ("FR", "DE", "GB", "SE", "PL", "ES", "IT", "NL")
PHASES = ("experimentation", "pretraining", "finetuning", "inference", "evaluation", "unclassified")
LANE_WIDTHS = (1, 2, 4, 8, 1, 8, 32, 4)   # GPUs per lane, by 32-GPU group (cycled)
PROJECTS = 50
NEAREST_BOUND_H = 3
WORLD = 480.0
TARGET_RATIO = 3.0
TARGET_RSS_MB = 4096.0
REL_TOL = 1e-6


# --------------------------------------------------------------------------------------------- generation

def settings(zones: int):
    from wattprint.pipeline.model import BuildSettings, ClusterFacts
    from wattprint.pipeline.sources.intensity.embedded import AnnualIntensity

    zs = [ZONES[i % len(ZONES)] + ("" if i < len(ZONES) else str(i)) for i in range(zones)]
    return BuildSettings(
        clusters=tuple(ClusterFacts(f"c{i}", provider="bench", region=f"r{i}", zone=z, pue=1.1 + 0.05 * i)
                       for i, z in enumerate(zs)),
        default_cluster="c0",
        nearest_hour_bound_h=NEAREST_BOUND_H,
        world_g_per_kwh=WORLD,
        annual=tuple(AnnualIntensity(z, "country", z, 100.0 + 40 * i, 2023, "lifecycle", "bench", "bench")
                     for i, z in enumerate(zs)),
    )


def generate(path: str, path_kind: str, gpus: int, days: int, jobs: int, zones: int) -> dict:
    """Write the fleet into a new wattprint DuckDB at `path`. path_kind: exporter | dcgm."""
    from wattprint.pipeline import db
    from wattprint.pipeline.model import MODELS, load_reference, materialize, model, run_models

    if gpus % 8 or gpus <= 0:
        raise SystemExit("--gpus must be a positive multiple of 8 (8 GPUs per node)")
    minutes = days * 1440
    if Path(path).exists():
        import duckdb

        with duckdb.connect(path, read_only=True, config=db.duckdb_config()) as old:
            mine = old.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'bench_gpu'").fetchone()[0]
        if not mine:
            raise SystemExit(f"{path} exists and was not made by this benchmark: refusing to overwrite it")
    for suffix in ("", ".wal"):
        Path(path + suffix).unlink(missing_ok=True)
    con = db.connect(path)
    s = settings(zones)
    load_reference(con, s)
    run_models(con, MODELS, s.params())     # the derived tables, empty: the fleet's streams and intervals go in them
    widths = "[" + ", ".join(str(w) for w in LANE_WIDTHS) + "]"
    # one row per GPU: node, cluster (by 4-node group), lane (a block of `width` GPUs inside the group)
    con.execute(f"""
        CREATE TABLE bench_gpu AS
        WITH g AS (
            SELECT g, g // 8 AS node, g % 8 AS slot, g // 32 AS grp,
                   {widths}[(g // 32) % {len(LANE_WIDTHS)} + 1] AS width
            FROM range($G) t(g)
        )
        SELECT g, node, slot, grp, width, 'c' || (grp % $Z) AS cluster,
               format('n{{:04d}}', node) AS hostname,
               dense_rank() OVER (ORDER BY grp, (g - grp * 32) // width) - 1 AS lane
        FROM g""", {"G": gpus, "Z": zones})
    # lanes get jobs in proportion to 1/sqrt(width) (narrow lanes: more, shorter jobs); exactly N in all
    con.execute("""
        CREATE TABLE bench_lane AS
        WITH l AS (
            SELECT lane, any_value(width) AS width, min(g) AS gpu0, count(*) AS n_gpus,
                   any_value(cluster) AS cluster, 1.0 / sqrt(any_value(width)) AS w
            FROM bench_gpu GROUP BY lane
        ), c AS (
            SELECT *, sum(w) OVER (ORDER BY lane) AS cum, sum(w) OVER () AS total FROM l
        )
        SELECT lane, width, gpu0, n_gpus, cluster,
               CAST(floor($N * (cum - w) / total + 1e-9) AS BIGINT) AS first_job,
               CAST(floor($N * cum / total + 1e-9) AS BIGINT)
                 - CAST(floor($N * (cum - w) / total + 1e-9) AS BIGINT) AS k
        FROM c""", {"N": jobs})
    # each lane's time is cut into k equal slots; a job starts early in its slot and runs 60-98 % of it.
    # Ledger times carry a seconds offset, as real schedulers' do (the exporter's minutes do not).
    con.execute("""
        CREATE TABLE bench_job AS
        WITH j AS (
            SELECT j, l.lane, l.cluster, l.n_gpus, l.gpu0, j - l.first_job AS r, l.k,
                   (j - l.first_job) * $T // l.k AS s0, (j - l.first_job + 1) * $T // l.k AS s1,
                   (hash(j, 'a') % 100000) / 100000.0 AS u1, (hash(j, 'b') % 100000) / 100000.0 AS u2
            FROM range($N) t(j) JOIN bench_lane l ON j >= l.first_job AND j < l.first_job + l.k
        ), t AS (
            SELECT *, s0 + CAST(floor((s1 - s0) * 0.1 * u1) AS BIGINT) AS start_min FROM j
        )
        SELECT j, lane, cluster, n_gpus, gpu0, r, k, start_min,
               greatest(start_min + 1, least(s1 - 1,
                        start_min + CAST(floor((s1 - s0) * (0.6 + 0.38 * u2)) AS BIGINT))) AS end_min,
               $G + 1 + coalesce(sum(n_gpus) OVER (ORDER BY j ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                 AS sbase
        FROM t""", {"N": jobs, "T": minutes, "G": gpus})
    short = con.execute("SELECT count(*) FROM bench_job WHERE end_min - start_min < 2").fetchone()[0]
    if short:
        raise SystemExit(f"{short} jobs shorter than 2 minutes: too many --jobs for --gpus x --days")
    phases = "[" + ", ".join(f"'{x}'" for x in PHASES) + "]"
    con.execute(f"""
        INSERT INTO jobs (cluster, job_id, project, phase, user_name, name, account, start_ts, end_ts, source, origin)
        SELECT cluster, 'job-' || j, format('proj-{{:02d}}', hash(j, 'p') % {PROJECTS}),
               {phases}[(hash(j, 'f') % 6)::BIGINT + 1], format('user-{{:03d}}', hash(j, 'u') % 200),
               'run-' || j, 'acct',
               TIMESTAMPTZ '{T0}' + to_seconds(start_min * 60 + hash(j, 's') % 60),
               TIMESTAMPTZ '{T0}' + to_seconds(end_min * 60 + hash(j, 'e') % 60), 'csv', 'bench'
        FROM bench_job""")
    # job_nodes: a job holds `width` GPUs of one node, or whole nodes for a 32-GPU lane
    con.execute("""
        INSERT INTO job_nodes
        SELECT j.cluster, 'job-' || j.j, g.hostname, count(*)::INTEGER
        FROM bench_job j JOIN bench_gpu g ON g.g >= j.gpu0 AND g.g < j.gpu0 + j.n_gpus
        GROUP BY ALL""")
    energy = ("60.0 * CASE WHEN busy THEN 300 + (g * 7919 + m * 104729) % 401"
              " ELSE 60 + (g * 31 + m * 17) % 31 END")
    minute_of = (f"SELECT g.g, g.cluster, g.hostname, g.slot, m, j.j, j.sbase, g.g - j.gpu0 AS pos,"
                 f" coalesce(m >= j.start_min AND m < j.end_min, false) AS busy"
                 f" FROM bench_gpu g CROSS JOIN range({minutes}) t(m)"
                 f" JOIN bench_lane l ON l.lane = g.lane"
                 f" LEFT JOIN bench_job j ON j.lane = g.lane AND j.r = (CASE WHEN l.k > 0 THEN m * l.k // {minutes}"
                 f" ELSE -1 END)")
    if path_kind == "exporter":
        con.execute("""
            INSERT INTO streams
            SELECT g + 1, 'wattprint', 'idle', cluster, hostname, slot::VARCHAR, 'GPU-' || g, NULL,
                   'NVIDIA H100 80GB HBM3', '', '', hostname, 'uuid:gpu-' || g, NULL
            FROM bench_gpu""")
        con.execute("""
            INSERT INTO streams
            SELECT j.sbase + (g.g - j.gpu0), 'wattprint', 'job', g.cluster, g.hostname, g.slot::VARCHAR,
                   'GPU-' || g.g, 'job-' || j.j, 'NVIDIA H100 80GB HBM3', '', '', g.hostname, 'uuid:gpu-' || g.g, NULL
            FROM bench_job j JOIN bench_gpu g ON g.g >= j.gpu0 AND g.g < j.gpu0 + j.n_gpus""")
        stream = "CASE WHEN busy THEN sbase + pos ELSE g + 1 END"
    elif path_kind == "dcgm":
        con.execute("""
            INSERT INTO streams
            SELECT g + 1, 'dcgm', 'gpu', cluster, hostname, slot::VARCHAR, 'GPU-' || g, NULL,
                   'NVIDIA H100 80GB HBM3', '', '', hostname, 'uuid:gpu-' || g, NULL
            FROM bench_gpu""")
        stream = "g + 1"
    else:
        raise ValueError(path_kind)
    t0 = time.perf_counter()
    con.execute(f"""
        INSERT INTO energy_intervals
        SELECT {stream}, TIMESTAMPTZ '{T0}' + to_minutes(m), TIMESTAMPTZ '{T0}' + to_minutes(m + 1),
               {energy}, 'counter', NULL
        FROM ({minute_of})""")
    t_intervals = time.perf_counter() - t0
    # what the model makes from the intervals before the results: each stream's span, and which source measures
    # each GPU when (one source per GPU here; every interval is a counter's)
    con.execute("CREATE TEMP VIEW stg_counter_intervals AS SELECT * FROM energy_intervals")
    for name in ("macros", "stream_spans", "gpu_coverage"):
        materialize(con, model(name), s.params())
    # hourly intensity per zone: a daily cycle plus noise; ~1 % of hours missing, and zone 1 has a 14-hour
    # outage (hours 50-63), so nearest_hour and monthly_mean fallbacks both run
    hours = days * 24
    con.execute(f"""
        INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin)
        SELECT c.zone, TIMESTAMPTZ '{T0}' + to_hours(h),
               round(80 + 60 * z + 40 * sin(2 * pi() * (h % 24) / 24.0 + z) + hash(z, h) % 25, 1),
               'lifecycle', 'bench', false, 3600, 'bench'
        FROM (SELECT cluster, zone, CAST(substr(cluster, 2) AS INTEGER) AS z FROM clusters) c
        CROSS JOIN range({hours}) t(h)
        WHERE hash(c.z, h, 'gap') % 89 <> 0 AND NOT (c.z = 1 AND h BETWEEN 50 AND 63)""")
    con.execute("CHECKPOINT")
    out = {
        "rows": con.execute("SELECT count(*) FROM energy_intervals").fetchone()[0],
        "streams": con.execute("SELECT count(*) FROM streams").fetchone()[0],
        "jobs": con.execute("SELECT count(*) FROM jobs").fetchone()[0],
        "multi_gpu_jobs": con.execute("SELECT count(*) FROM bench_job WHERE n_gpus > 1").fetchone()[0],
        "multi_node_jobs": con.execute("SELECT count(*) FROM bench_job WHERE n_gpus > 8").fetchone()[0],
        "busy_share": con.execute(
            "SELECT sum(end_min - start_min) * n_gpus FROM bench_job GROUP BY n_gpus").fetchall(),
        "intensity_hours": con.execute("SELECT count(*) FROM intensity_hourly").fetchone()[0],
        "energy_j": con.execute("SELECT sum(energy_j) FROM energy_intervals").fetchone()[0],
        "t_intervals": t_intervals,
    }
    out["busy_share"] = sum(x for (x,) in out["busy_share"]) / (gpus * minutes)
    con.close()
    out["db_bytes"] = Path(path).stat().st_size
    return out


# --------------------------------------------------------------------------------------------- phases
# Each runs in a fresh subprocess (see child()); what it returns comes back as JSON with its peak RSS.

BASELINE_SQL = ("CREATE OR REPLACE TEMP TABLE bench_baseline AS SELECT stream_id, epoch_us(start_ts) // 3600000000"
                " AS h, sum(energy_j) AS energy_j FROM energy_intervals GROUP BY ALL")
ROLLUP_SQL = ("CREATE OR REPLACE TEMP TABLE bench_rollup AS SELECT project, phase, hour_ts, sum(energy_j) AS energy_j,"
              " sum(emissions_g) AS emissions_g FROM fct_job_gpu_hour GROUP BY ALL")
# untimed, before any timed statement: pulls every column of energy_intervals into DuckDB's buffer pool, so
# that neither the baseline nor the model pays the first read of the file
WARM_SQL = ("SELECT count(*), max(stream_id), max(start_ts), max(end_ts), sum(energy_j), max(quality),"
            " max(label_job) FROM energy_intervals")


def open_db(path: str, memory_limit: str | None):
    from wattprint.pipeline import db

    con = db.connect(path)
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(WARM_SQL).fetchall()
    return con


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def phase_baseline(path: str, reps: int, memory_limit: str | None) -> dict:
    con = open_db(path, memory_limit)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        con.execute(BASELINE_SQL)
        times.append(time.perf_counter() - t0)
    groups = con.execute("SELECT count(*) FROM bench_baseline").fetchone()[0]
    rows = con.execute("SELECT count(*) FROM energy_intervals").fetchone()[0]
    return {"seconds": median(times), "all": times, "groups": groups, "rows": rows}


def phase_wattprint(path: str, zones: int, reps: int, memory_limit: str | None, totals_out: str | None) -> dict:
    import wattprint.pipeline.model as model

    con = open_db(path, memory_limit)
    s = settings(zones)
    steps: dict[str, float] = {}
    real_materialize = model.materialize

    def timed_materialize(c, m, params, sql=None, hours=None):
        t = time.perf_counter()
        try:
            return real_materialize(c, m, params, sql, hours)
        finally:
            steps[m.name] = time.perf_counter() - t

    model.materialize = timed_materialize
    runs = []
    for _ in range(reps):
        steps.clear()
        t0 = time.perf_counter()
        summary = model.derive_results(con, s)
        t1 = time.perf_counter()
        con.execute(ROLLUP_SQL)
        t2 = time.perf_counter()
        runs.append({"seconds": t2 - t0, "derive": t1 - t0, "rollup": t2 - t1, **steps})
    model.materialize = real_materialize
    in_order = [r["seconds"] for r in runs]
    runs.sort(key=lambda r: r["seconds"])
    mid = runs[len(runs) // 2]
    # conservation: everything measured is in the result, once
    (e_in,) = con.execute("SELECT sum(energy_j) FROM energy_intervals").fetchone()
    (e_out,) = con.execute("SELECT sum(energy_j) FROM fct_job_gpu_hour").fetchone()
    (e_roll,) = con.execute("SELECT sum(energy_j) FROM bench_rollup").fetchone()
    for what, got in (("fct_job_gpu_hour", e_out), ("the rollup", e_roll)):
        if abs(got - e_in) > REL_TOL * abs(e_in):
            raise SystemExit(f"CONSERVATION FAILED: {what} holds {got!r} J, energy_intervals {e_in!r} J")
    out = {
        **mid, "all": in_order, "fct_rows": summary.fct_rows,
        "memory_limit": con.execute("SELECT current_setting('memory_limit')").fetchone()[0],
        "rollup_rows": con.execute("SELECT count(*) FROM bench_rollup").fetchone()[0],
        "rows": summary.intervals, "energy_in": e_in, "energy_out": e_out,
        "attribution": con.execute(
            "SELECT attribution, count(*), sum(energy_j) FROM fct_job_gpu_hour GROUP BY ALL ORDER BY ALL").fetchall(),
        "intensity_quality": con.execute(
            "SELECT intensity_quality, count(*) FROM fct_job_gpu_hour GROUP BY ALL ORDER BY ALL").fetchall(),
    }
    if totals_out:
        rows = con.execute("SELECT coalesce(project, '(none)'), sum(energy_j), sum(emissions_g) FROM bench_rollup"
                           " GROUP BY ALL").fetchall()
        Path(totals_out).write_text(json.dumps({p: [e, g] for p, e, g in rows}))
    return out


def phase_profile(path: str, zones: int, memory_limit: str | None) -> dict:
    """EXPLAIN ANALYZE (JSON profiling) of int_hourly_pieces.sql: the operators that took the time."""
    from wattprint.pipeline.model import materialize, model

    con = open_db(path, memory_limit)
    params = settings(zones).params()
    for name in ("macros", "int_node_allocations"):     # what the model makes before it
        materialize(con, model(name), params)
    prof = str(Path(path).with_suffix(".profile.json"))
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{prof}'")
    t0 = time.perf_counter()
    materialize(con, model("int_hourly_pieces"), params)
    wall = time.perf_counter() - t0
    con.execute("PRAGMA disable_profiling")
    tree = json.loads(Path(prof).read_text())
    ops: list[dict] = []

    def walk(node: dict, cte: str) -> None:
        info = node.get("extra_info") or {}
        kind = node.get("type") or node.get("operator_type") or node.get("operator_name") or "?"
        here = info.get("CTE Name", cte) if kind == "CTE" else cte
        what = (info.get("Conditions") or info.get("Groups") or info.get("Expression") or info.get("Table")
                or info.get("CTE Name") or "")
        if isinstance(what, list):
            what = ", ".join(what)
        ops.append({"op": kind, "cte": here, "what": str(what)[:90],
                    "seconds": float(node.get("timing", node.get("operator_timing", 0.0)) or 0.0),
                    "rows": int(node.get("intermediate_rows", node.get("operator_cardinality", 0)) or 0)})
        for i, ch in enumerate(node.get("children", [])):
            walk(ch, here if i == 0 else cte)   # a CTE node's first child defines it, the rest use it

    for top in tree.get("operator", tree.get("children", [])):
        walk(top, "")
    q = tree.get("query", {})
    ops.sort(key=lambda o: -o["seconds"])
    return {"wall": wall, "cpu": q.get("cpu_time", tree.get("cpu_time")),
            "peak_buffer": (tree.get("system") or {}).get("peak_buffer_memory"), "top": ops[:8]}


def phase_pandas(path: str, zones: int, totals_in: str | None) -> dict:
    """What a user would write in pandas for the same per-project/phase/hour emissions."""
    import warnings

    import duckdb
    import pandas as pd

    from wattprint.pipeline.db import duckdb_config

    warnings.simplefilter("ignore")
    con = duckdb.connect(path, read_only=True, config=duckdb_config())
    t0 = time.perf_counter()
    iv = con.execute("SELECT stream_id, start_ts, energy_j FROM energy_intervals").df()
    st = con.execute("SELECT stream_id, cluster, job_id FROM streams").df()
    jobs = con.execute("SELECT cluster, job_id, project, phase FROM jobs").df()
    ih = con.execute("SELECT zone, hour_ts, g_per_kwh FROM intensity_hourly").df()
    cl = con.execute("SELECT cluster, zone, pue FROM clusters").df()
    ann = con.execute("SELECT zone, g_per_kwh AS annual FROM intensity_annual").df()
    t_load = time.perf_counter() - t0
    con.close()
    rows = len(iv)

    t0 = time.perf_counter()
    df = iv.merge(st, on="stream_id", how="inner")
    del iv
    df["hour_ts"] = df["start_ts"].dt.floor("h")   # every 60 s interval here lies inside one hour
    df = df.merge(jobs, on=["cluster", "job_id"], how="left")
    df = df.merge(cl, on="cluster", how="left")
    # intensity for each (zone, hour) needed: that hour, else the nearest within the bound (earlier on a tie),
    # else the zone's monthly mean, else the annual default, else the world average
    need = df[["zone", "hour_ts"]].drop_duplicates().sort_values("hour_ts")
    known = ih.assign(src_ts=ih["hour_ts"]).sort_values("hour_ts")
    tol = pd.Timedelta(hours=NEAREST_BOUND_H)
    back = pd.merge_asof(need, known, on="hour_ts", by="zone", direction="backward", tolerance=tol)
    fwd = pd.merge_asof(need, known, on="hour_ts", by="zone", direction="forward", tolerance=tol)
    d_back = (back["hour_ts"] - back["src_ts"]).dt.total_seconds()
    d_fwd = (fwd["src_ts"] - fwd["hour_ts"]).dt.total_seconds()
    use_fwd = fwd["g_per_kwh"].notna() & (back["g_per_kwh"].isna() | (d_fwd < d_back))
    need = need.assign(g_per_kwh=back["g_per_kwh"].where(~use_fwd, fwd["g_per_kwh"]).to_numpy())
    month = ih["hour_ts"].dt.year * 100 + ih["hour_ts"].dt.month
    monthly = ih.assign(month=month).groupby(["zone", "month"], as_index=False)["g_per_kwh"].mean()
    need["month"] = need["hour_ts"].dt.year * 100 + need["hour_ts"].dt.month
    need = need.merge(monthly.rename(columns={"g_per_kwh": "monthly"}), on=["zone", "month"], how="left")
    need = need.merge(ann, on="zone", how="left")
    need["g_per_kwh"] = need["g_per_kwh"].fillna(need["monthly"]).fillna(need["annual"]).fillna(WORLD)
    df = df.merge(need[["zone", "hour_ts", "g_per_kwh"]], on=["zone", "hour_ts"], how="left")
    df["emissions_g"] = df["energy_j"] / 3.6e6 * df["pue"] * df["g_per_kwh"]
    out = df.groupby(["project", "phase", "hour_ts"], dropna=False, as_index=False)[["energy_j", "emissions_g"]].sum()
    t_compute = time.perf_counter() - t0

    mismatch = []
    if totals_in:
        want = json.loads(Path(totals_in).read_text())
        got = out.assign(project=out["project"].fillna("(none)")).groupby("project")[["energy_j", "emissions_g"]].sum()
        if set(got.index) != set(want):
            mismatch.append(f"projects differ: {sorted(set(got.index) ^ set(want))[:5]}")
        for p, (e, g) in want.items():
            if p in got.index:
                ge, gg = float(got.at[p, "energy_j"]), float(got.at[p, "emissions_g"])
                if abs(ge - e) > REL_TOL * abs(e) or abs(gg - g) > REL_TOL * abs(g):
                    mismatch.append(f"{p}: pandas {ge!r} J {gg!r} g, wattprint {e!r} J {g!r} g")
        if mismatch:
            raise SystemExit("PANDAS != WATTPRINT:\n  " + "\n  ".join(mismatch[:10]))
    return {"rows": rows, "load": t_load, "seconds": t_compute, "groups": len(out), "checked": bool(totals_in)}


def busy_cpu_s() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds this process has used): their growth
    apart over a phase is what other processes took from it."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")   # all but idle and iowait
    except (OSError, ValueError, IndexError):
        busy = float("nan")
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return busy, ru.ru_utime + ru.ru_stime


def child(spec: dict) -> dict:
    kind = spec["phase"]
    busy0, own0 = busy_cpu_s()
    t0 = time.perf_counter()
    if kind == "generate":
        out = generate(spec["path"], spec["kind"], spec["gpus"], spec["days"], spec["jobs"], spec["zones"])
    elif kind == "baseline":
        out = phase_baseline(spec["path"], spec["reps"], spec.get("memory_limit"))
    elif kind == "wattprint":
        out = phase_wattprint(spec["path"], spec["zones"], spec["reps"], spec.get("memory_limit"), spec.get("totals"))
    elif kind == "profile":
        out = phase_profile(spec["path"], spec["zones"], spec.get("memory_limit"))
    elif kind == "pandas":
        out = phase_pandas(spec["path"], spec["zones"], spec.get("totals"))
    else:
        raise ValueError(kind)
    busy1, own1 = busy_cpu_s()
    out["wall"] = out.get("wall", time.perf_counter() - t0)
    out["others_cores"] = max(0.0, (busy1 - busy0) - (own1 - own0)) / (time.perf_counter() - t0)
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux
    return out


OTHERS: list[float] = []   # cores' worth of CPU other processes used during each timed phase


def run_script_child(script: str, spec: dict, what: str, timed: bool, others: list[float]) -> dict:
    """Run one phase of `script` in a fresh interpreter (`--phase-json SPEC`); its last stdout line is the JSON
    result. A timed phase's share of other processes' CPU is appended to `others`."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, script, "--phase-json", json.dumps(spec)], capture_output=True, text=True,
                       check=False, cwd=str(ROOT))
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"phase {what} failed (exit {p.returncode})")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if timed:
        others.append(out["others_cores"])
    print(f"# {what}: {time.perf_counter() - t0:.1f} s, peak RSS {out['rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    return out


def run_child(spec: dict) -> dict:
    return run_script_child(__file__, spec, f"{spec['phase']:<9} {Path(spec['path']).name}",
                            spec["phase"] in ("baseline", "wattprint", "pandas"), OTHERS)


# --------------------------------------------------------------------------------------------- report

def machine() -> str:
    model = platform.processor() or "unknown"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = ""
    try:
        kb = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal"))
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass

    def ver(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "absent"

    return (f"{os.cpu_count()} CPU cores ({model}){mem}, Linux {platform.release()}, Python "
            f"{platform.python_version()}, duckdb {ver('duckdb')}, pandas {ver('pandas')}")


def mb(x: float) -> str:
    return f"{x:,.0f} MB"


def rate(rows: int, s: float) -> str:
    return f"{rows / s / 1e6:.1f} M/s" if s > 0 else "-"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def markdown(a: argparse.Namespace, r: dict) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    g = r["gen"]
    out = [
        f"Machine: {machine()}. Run: {now}.",
        "",
        f"Data (generated in DuckDB with range(), {g['seconds']:.1f} s, {g['db_bytes'] / 1e6:.0f} MB file): "
        f"{a.gpus} GPUs on {a.gpus // 8} nodes in {a.zones} clusters (one zone each), {a.days} days at 60 s = "
        f"{g['rows']:,} energy intervals; {g['jobs']:,} jobs ({g['multi_gpu_jobs']} multi-GPU, "
        f"{g['multi_node_jobs']} multi-node) keeping GPUs busy {g['busy_share']:.0%} of the time; "
        f"{g['intensity_hours']:,} hourly intensities (some hours missing). Times are wall seconds "
        f"(time.perf_counter), median of {a.reps} ({a.baseline_reps} for the baseline; best in brackets), each phase "
        f"in a fresh process after an untimed scan of "
        f"energy_intervals; DuckDB memory_limit {r['exp']['wp'].get('memory_limit', '?')} "
        f"({'--memory-limit' if a.memory_limit else 'as wattprint.pipeline.db.connect sets it'}), threads default. "
        f"Other processes on this machine used {sum(OTHERS) / max(1, len(OTHERS)):.2f} of its {os.cpu_count()} "
        f"cores on average during the timed phases (at most {max(OTHERS, default=0):.2f} in one phase).",
        "",
        "Join + aggregate: `derive_results` (fct_job_gpu_hour) + the per-project/phase/hour rollup, against the bare "
        "`SELECT stream_id, hour, sum(energy_j) GROUP BY ALL` over the same rows (both into temp tables).",
        "",
        "| path | rows | baseline (best) | wattprint (best) | wattprint / baseline (best / best) | target ≤ 3× | "
        "baseline rows/s | wattprint rows/s | peak RSS baseline | peak RSS wattprint | target RSS ≤ 4 GB |",
        "|---|---:|---:|---:|---:|:---|---:|---:|---:|---:|:---|",
    ]
    for label, key in (("exporter (job/idle streams)", "exp"), ("dcgm (node_share)", "dcgm")):
        if key not in r:
            continue
        b, w = r[key]["base"], r[key]["wp"]
        ratio, best = w["seconds"] / b["seconds"], min(w["all"]) / min(b["all"])
        out.append(
            f"| {label} | {w['rows']:,} | {b['seconds']:.2f} s ({min(b['all']):.2f}) | {w['seconds']:.2f} s "
            f"({min(w['all']):.2f}) | {ratio:.2f}× ({best:.2f}×) | "
            f"{verdict(ratio <= TARGET_RATIO)} | {rate(b['rows'], b['seconds'])} | {rate(w['rows'], w['seconds'])} | "
            f"{mb(b['rss_mb'])} | {mb(w['rss_mb'])} | {verdict(w['rss_mb'] <= TARGET_RSS_MB)} |")
    out += [
        "",
        "Where wattprint's time goes (same median run; seconds):",
        "",
        "| path | int_hourly_pieces | int_intensity_resolved | fct_job_gpu_hour | rest of derive_results | "
        "rollup | total | fct rows | rollup rows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key in (("exporter", "exp"), ("dcgm", "dcgm")):
        if key not in r:
            continue
        w = r[key]["wp"]
        steps = [w.get(k, 0.0) for k in ("int_hourly_pieces", "int_intensity_resolved", "fct_job_gpu_hour")]
        out.append(f"| {label} | " + " | ".join(f"{x:.2f}" for x in steps) +
                   f" | {w['derive'] - sum(steps):.2f} | {w['rollup']:.2f} | {w['seconds']:.2f} | "
                   f"{w['fct_rows']:,} | {w['rollup_rows']:,} |")
    if "pandas" in r:
        p, pw, pb = r["pandas"]["pd"], r["pandas"]["wp"], r["pandas"]["base"]
        out += [
            "",
            f"pandas (a straightforward implementation: DataFrames from DuckDB, merge, floor to the hour, intensity "
            f"with the same fallback chain via merge_asof, groupby) at {r['pandas']['gpus']} GPUs × {a.days} days; "
            f"its per-project energy and emissions were checked equal to wattprint's (1e-6 relative).",
            "",
            "| implementation | rows | load into DataFrames | compute | compute / baseline | compute / wattprint | "
            "peak RSS |",
            "|---|---:|---:|---:|---:|---:|---:|",
            f"| wattprint (DuckDB) | {pw['rows']:,} | - | {pw['seconds']:.2f} s | "
            f"{pw['seconds'] / pb['seconds']:.2f}× | 1.00× | {mb(pw['rss_mb'])} |",
            f"| pandas {r['pandas']['version']} | {p['rows']:,} | {p['load']:.2f} s | {p['seconds']:.2f} s | "
            f"{p['seconds'] / pb['seconds']:.2f}× | {p['seconds'] / pw['seconds']:.2f}× | {mb(p['rss_mb'])} |",
        ]
        if r["pandas"].get("note"):
            out += ["", r["pandas"]["note"]]
    if "dcgm" in r and "prof" in r["dcgm"]:
        pr = r["dcgm"]["prof"]
        out += [
            "",
            f"dcgm path, EXPLAIN ANALYZE of int_hourly_pieces.sql ({r['dcgm']['gpus']} GPUs): {pr['wall']:.2f} s wall, "
            f"{pr['cpu'] or 0:.2f} s CPU, peak buffer {(pr['peak_buffer'] or 0) / 1e6:,.0f} MB. Operators by CPU "
            f"time (summed over threads):",
            "",
            "| operator | in CTE | on | CPU s | rows out |",
            "|---|---|---|---:|---:|",
        ]
        for o in pr["top"]:
            out.append(f"| {o['op']} | {o['cte'] or '-'} | {o['what'].replace('|', '/') or '-'} | "
                       f"{o['seconds']:.2f} | {o['rows']:,} |")
    if r.get("scaling"):
        sc = r["scaling"]
        out += [
            "",
            f"Scaling (exporter path, {sc[0]['gpus']} GPUs, jobs in proportion to GPU-time; a month = "
            f"{a.month_days} days; median of {a.scaling_reps}):",
            "",
            "| months | rows | generate | baseline | wattprint | wattprint / baseline | baseline s per M rows | "
            "wattprint s per M rows | peak RSS wattprint |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for x in sc:
            b, w, n = x["base"], x["wp"], x["wp"]["rows"] / 1e6
            out.append(f"| {x['months']} | {x['wp']['rows']:,} | {x['gen']['seconds']:.1f} s | {b['seconds']:.2f} s | "
                       f"{w['seconds']:.2f} s | {w['seconds'] / b['seconds']:.2f}× | {b['seconds'] / n:.4f} | "
                       f"{w['seconds'] / n:.4f} | {mb(w['rss_mb'])} |")
        first, last = sc[0], sc[-1]
        grow = (last["wp"]["seconds"] / last["wp"]["rows"]) / (first["wp"]["seconds"] / first["wp"]["rows"])
        out += ["", f"Seconds per row at {last['months']} months / at {first['months']} month(s): {grow:.2f} "
                f"(1.00 = linear)."]
    fb = r["exp"]["wp"]["intensity_quality"]
    out += ["", "Intensity resolution in the exporter run (fct rows): " +
            ", ".join(f"{q} {n:,}" for q, n in fb) + "."]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- main

def measure(path: str, a: argparse.Namespace, reps: int, base_reps: int, totals: str | None = None) -> dict:
    ml = a.memory_limit
    return {"base": run_child({"phase": "baseline", "path": path, "reps": base_reps, "memory_limit": ml}),
            "wp": run_child({"phase": "wattprint", "path": path, "zones": a.zones, "reps": reps,
                             "memory_limit": ml, "totals": totals})}


def gen(path: str, kind: str, a: argparse.Namespace, gpus: int, days: int, jobs: int) -> dict:
    g = run_child({"phase": "generate", "path": path, "kind": kind, "gpus": gpus, "days": days, "jobs": jobs,
                   "zones": a.zones})
    g["seconds"] = g["wall"]
    os.sync()   # the new file's pages reach the disk now, not during a timed commit (its fsync would wait on them)
    return g


def scaled_jobs(a: argparse.Namespace, gpus: int, days: int) -> int:
    return max(1, round(a.jobs * gpus / a.gpus * days / a.days))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--phase-json", help=argparse.SUPPRESS)
    p.add_argument("--gpus", type=int, default=1024, help="GPUs, 8 per node (default: %(default)s)")
    p.add_argument("--days", type=int, default=30, help="days of 60 s intervals (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=5000, help="jobs in the ledger (default: %(default)s)")
    p.add_argument("--zones", type=int, default=5, help="clusters, one grid zone each (default: %(default)s)")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions, median reported (default: %(default)s)")
    p.add_argument("--baseline-reps", type=int, default=5, help="timed baseline repetitions (default: %(default)s)")
    p.add_argument("--scaling-months", default="1,3,12", help="months for the scaling series ('' to skip)")
    p.add_argument("--scaling-gpus", type=int, help="GPUs for the scaling series (default: --gpus)")
    p.add_argument("--scaling-reps", type=int, default=3,
                   help="repetitions per scaling point, baseline and wattprint (default: %(default)s)")
    p.add_argument("--month-days", type=int, default=30, help="days in a scaling 'month' (default: %(default)s)")
    p.add_argument("--dcgm-gpus", type=int, help="GPUs for the dcgm/node_share path (default: --gpus; 0 skips it)")
    p.add_argument("--pandas-gpus", type=int, help="GPUs for the pandas comparison (default: --gpus)")
    p.add_argument("--skip-pandas", action="store_true", help="do not run the pandas comparison")
    p.add_argument("--memory-limit", help="DuckDB memory_limit for the measured phases (default: DuckDB's)")
    p.add_argument("--db", metavar="PATH", help="exporter-path database to create (others next to it); kept")
    p.add_argument("--markdown-out", metavar="PATH", help="also write the Markdown tables to PATH")
    p.add_argument("--quick", action="store_true", help="tiny sizes, to smoke-test the script (< 30 s)")
    a = p.parse_args(argv)
    if a.phase_json:
        print(json.dumps(child(json.loads(a.phase_json))))
        return 0
    if a.quick:
        a.gpus, a.days, a.jobs, a.reps, a.baseline_reps, a.scaling_reps, a.month_days = 64, 3, 40, 1, 1, 1, 1
        a.scaling_gpus = a.scaling_gpus or 32
    if not a.skip_pandas and importlib.util.find_spec("pandas") is None:
        p.error("the pandas comparison needs pandas: `make bench-pipeline` installs it (requirements/bench.txt), "
                "or pass --skip-pandas")
    months = [int(x) for x in a.scaling_months.split(",") if x.strip()]
    scaling_gpus = a.scaling_gpus or a.gpus
    dcgm_gpus = a.gpus if a.dcgm_gpus is None else a.dcgm_gpus
    pandas_gpus = a.pandas_gpus or a.gpus

    with tempfile.TemporaryDirectory(prefix="wattprint-bench-model-") as tmp:
        main_db = Path(a.db).resolve() if a.db else Path(tmp) / "bench.duckdb"

        def sibling(tag: str) -> str:
            return str(main_db.with_name(f"{main_db.stem}-{tag}.duckdb"))

        def drop(path: str) -> None:
            if not a.db:
                for suffix in ("", ".wal", ".profile.json"):
                    Path(path + suffix).unlink(missing_ok=True)

        r: dict = {}
        totals = str(Path(tmp) / "totals.json")
        r["gen"] = gen(str(main_db), "exporter", a, a.gpus, a.days, a.jobs)
        r["exp"] = measure(str(main_db), a, a.reps, a.baseline_reps, totals)
        if not a.skip_pandas:
            if pandas_gpus == a.gpus:
                pdb, ptot, pm = str(main_db), totals, r["exp"]
            else:
                pdb, ptot = sibling(f"pandas-{pandas_gpus}"), str(Path(tmp) / "totals-pandas.json")
                gen(pdb, "exporter", a, pandas_gpus, a.days, scaled_jobs(a, pandas_gpus, a.days))
                pm = measure(pdb, a, a.reps, a.baseline_reps, ptot)
            pd_out = run_child({"phase": "pandas", "path": pdb, "zones": a.zones, "totals": ptot})
            r["pandas"] = {"pd": pd_out, "wp": pm["wp"], "base": pm["base"], "gpus": pandas_gpus,
                           "version": metadata.version("pandas")}
            if pandas_gpus != a.gpus:
                r["pandas"]["note"] = (f"pandas was run at {pandas_gpus} GPUs, not {a.gpus} (--pandas-gpus); "
                                       "wattprint and the baseline in this table were re-measured at that size.")
                drop(pdb)
        if dcgm_gpus:
            ddb = sibling("dcgm")
            gen(ddb, "dcgm", a, dcgm_gpus, a.days, scaled_jobs(a, dcgm_gpus, a.days))
            r["dcgm"] = measure(ddb, a, a.reps, a.baseline_reps)
            r["dcgm"]["gpus"] = dcgm_gpus
            r["dcgm"]["prof"] = run_child({"phase": "profile", "path": ddb, "zones": a.zones,
                                           "memory_limit": a.memory_limit})
            drop(ddb)
        r["scaling"] = []
        for m in months:
            sdb = sibling(f"scale-{m}m")
            days = m * a.month_days
            g = gen(sdb, "exporter", a, scaling_gpus, days, scaled_jobs(a, scaling_gpus, days))
            point = measure(sdb, a, a.scaling_reps, a.scaling_reps)
            r["scaling"].append({"months": m, "gpus": scaling_gpus, "gen": g, **point})
            drop(sdb)
    text = markdown(a, r)
    print(text, end="")
    if a.markdown_out:
        Path(a.markdown_out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
