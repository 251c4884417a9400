"""Incremental builds against full ones, on a long history: what a day's ledger import costs once months are stored.

The fleet is bench_model.py's generator (exporter path: wattprint's per-job and idle counters; 1,024 GPUs on 8-GPU
nodes, `--zones` clusters, hourly intensity with holes), `--months` months of `--month-days` days at 60 s, jobs in
proportion to GPU-time. Before the full build, the jobs that start on one day in the middle of the history (`--day`)
are taken out of the ledger, as if that day's `sacct` had not been imported yet; then, each phase in a fresh
process of this script (peak RSS per phase from getrusage):

  full         model.derive_results: every result table from the stored intervals (what `wattprint build` does
               after the intervals), the number an import would pay without incremental builds;
  incremental  that day's jobs imported as `wattprint jobs import` does it (dirty.jobs before and after, the rows
               written, model.rebuild_hours over the hours they reach), in one transaction;
  report       one project's report for one month on the whole history (build + JSON render, median of --reps),
               as `wattprint report --project P --month M --format json`.

Checked in the run (`--check`, default on for --quick): the incremental result equals a full build of the same
inputs, table by table and bit for bit.

    .venv/bin/python benchmarks/bench_incremental.py [--gpus 1024 --months 12] [--markdown-out PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_model  # noqa: E402


def phase_generate(spec: dict) -> dict:
    out = bench_model.generate(spec["path"], "exporter", spec["gpus"], spec["days"], spec["jobs"], spec["zones"])
    from wattprint.pipeline import db

    con = db.connect(spec["path"])
    day0 = f"TIMESTAMPTZ '{bench_model.T0}' + to_days({spec['day']})"
    con.execute(f"CREATE TABLE bench_day_jobs AS SELECT * FROM jobs WHERE start_ts >= {day0}"
                f" AND start_ts < {day0} + INTERVAL 1 DAY")
    con.execute("CREATE TABLE bench_day_job_nodes AS"
                " SELECT n.* FROM job_nodes n JOIN bench_day_jobs USING (cluster, job_id)")
    con.execute("DELETE FROM job_nodes WHERE (cluster, job_id) IN (SELECT (cluster, job_id) FROM bench_day_jobs)")
    con.execute("DELETE FROM jobs WHERE (cluster, job_id) IN (SELECT (cluster, job_id) FROM bench_day_jobs)")
    out["day_jobs"] = con.execute("SELECT count(*) FROM bench_day_jobs").fetchall()[0][0]
    if spec.get("order") == "time":     # the intervals stored by time, not by stream (the generator's order)
        t0 = time.perf_counter()
        con.execute("CREATE TABLE bench_sorted AS SELECT * FROM energy_intervals ORDER BY start_ts, stream_id")
        con.execute("DROP TABLE energy_intervals")
        con.execute("ALTER TABLE bench_sorted RENAME TO energy_intervals")
        out["sort_s"] = time.perf_counter() - t0
    con.execute("CHECKPOINT")
    con.close()
    return out


def phase_full(spec: dict) -> dict:
    from wattprint.pipeline import db
    from wattprint.pipeline.model import derive_results

    con = db.connect(spec["path"])
    if spec.get("warm", True):
        con.execute(bench_model.WARM_SQL).fetchall()
    t0 = time.perf_counter()
    with db.transaction(con):
        summary = derive_results(con, bench_model.settings(spec["zones"]))
    seconds = time.perf_counter() - t0
    con.close()
    return {"seconds": seconds, "fct_rows": summary.fct_rows, "rows": summary.intervals}


def phase_incremental(spec: dict) -> dict:
    from wattprint.pipeline import db, dirty
    from wattprint.pipeline.model import rebuild_hours

    con = db.connect(spec["path"])
    if spec.get("warm", True):        # off: the peak RSS is the import's own, not the warmed table's
        con.execute(bench_model.WARM_SQL).fetchall()
    keys = [tuple(r) for r in con.execute("SELECT cluster, job_id FROM bench_day_jobs").fetchall()]
    s = bench_model.settings(spec["zones"])
    t0 = time.perf_counter()
    with db.transaction(con):
        before = dirty.jobs(con, keys)
        con.execute("INSERT INTO jobs SELECT * FROM bench_day_jobs")
        con.execute("INSERT INTO job_nodes SELECT * FROM bench_day_job_nodes")
        after = dirty.jobs(con, keys)
        hours = dirty.union(before, after)
        t1 = time.perf_counter()
        summary = rebuild_hours(con, s, hours)
    seconds = time.perf_counter() - t0
    con.close()
    assert hours is not None
    return {"seconds": seconds, "dirty_s": t1 - t0, "hours": hours[1] - hours[0], "jobs": len(keys),
            "fct_rows": summary.fct_rows}


def phase_report(spec: dict) -> dict:
    from wattprint.pipeline import db
    from wattprint.pipeline.report.run import ReportRequest
    from wattprint.pipeline.report.run import run as report
    from wattprint.pipeline.settings import load_settings

    con = db.connect(spec["path"], read_only=True)
    label = spec["month"]
    (project,) = con.execute(
        "SELECT project FROM fct_job_gpu_hour WHERE strftime(hour_ts, '%Y-%m') = ? AND project IS NOT NULL"
        " GROUP BY ALL ORDER BY count(*) DESC, project LIMIT 1", [label]).fetchall()[0]
    con.close()
    settings = load_settings(None)     # clusters, zones and PUE come from the file's clusters table
    out = spec["path"] + ".report.json"
    times = []
    for _ in range(spec["reps"]):
        t0 = time.perf_counter()
        rc = report(ReportRequest(month=label, project=project, format="json", out=out, db=spec["path"],
                                  quiet=True), settings)
        times.append(time.perf_counter() - t0)
        if rc:
            raise SystemExit(f"wattprint report exited {rc}")
    size = Path(out).stat().st_size
    Path(out).unlink()
    return {"seconds": bench_model.median(times), "all": times, "project": project, "json_bytes": size}


def phase_check(spec: dict) -> dict:
    """The incremental database's result tables against a full build of a copy of its inputs."""
    from wattprint.pipeline import db
    from wattprint.pipeline.model import DERIVED, RESULTS, derive_results

    def tables(path: str) -> dict:
        con = db.connect(path, read_only=True)
        out = {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
               for t in DERIVED if t in {m.name for m in RESULTS}}
        con.close()
        return out

    copy = spec["path"] + ".check"
    shutil.copy(spec["path"], copy)
    con = db.connect(copy)
    with db.transaction(con):
        derive_results(con, bench_model.settings(spec["zones"]))
    con.close()
    got, want = tables(spec["path"]), tables(copy)
    Path(copy).unlink()
    bad = [t for t in want if got[t] != want[t]]
    if bad:
        raise SystemExit(f"INCREMENTAL BUILD DIFFERS FROM A FULL ONE: {bad}")
    return {"tables": len(want), "rows": sum(len(v) for v in want.values())}


PHASES = {"generate": phase_generate, "full": phase_full, "incremental": phase_incremental,
          "report": phase_report, "check": phase_check}


def child(spec: dict) -> dict:
    import resource

    busy0, own0 = bench_model.busy_cpu_s()
    t0 = time.perf_counter()
    out = PHASES[spec["phase"]](spec)
    out["wall"] = time.perf_counter() - t0
    busy1, own1 = bench_model.busy_cpu_s()
    out["others_cores"] = max(0.0, (busy1 - busy0) - (own1 - own0)) / out["wall"]
    out["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return out


OTHERS: list[float] = []   # cores' worth of CPU other processes used during each timed phase


def run(spec: dict) -> dict:
    return bench_model.run_script_child(__file__, spec, spec["phase"], spec["phase"] != "generate", OTHERS)


def markdown(a: argparse.Namespace, r: dict) -> str:
    g, full, inc, rep = r["generate"], r["full"], r["incremental"], r["report"]
    ratio = inc["seconds"] / full["seconds"]
    lines = [
        f"Data (bench_model.py's generator, exporter path, {g['wall']:.0f} s): {a.gpus:,} GPUs, {a.months} months of "
        f"{a.month_days} days at 60 s = {full['rows']:,} energy intervals, {g['jobs']:,} jobs; the {g['day_jobs']:,} "
        f"jobs that start on day {a.day} are imported last. "
        + ("energy_intervals read into the buffer pool before each timed build (untimed). " if a.warm else
           "No warm-up read (--no-warm): each build reads only what it needs. ")
        + f"Machine: {bench_model.machine()}.",
        "",
        "| phase | seconds | peak RSS | notes |",
        "|---|---:|---:|---|",
        f"| full build of the results (`derive_results`) | {full['seconds']:.2f} | {bench_model.mb(full['rss_mb'])} | "
        f"{full['fct_rows']:,} fct_job_gpu_hour rows |",
        f"| one day's ledger imported (`rebuild_hours`) | {inc['seconds']:.2f} | {bench_model.mb(inc['rss_mb'])} | "
        f"{inc['jobs']:,} jobs, {inc['hours']:,} hours rebuilt; dirty-hour rules {inc['dirty_s']:.2f} s |",
        f"| one project-month report (JSON) | {rep['seconds']:.2f} | {bench_model.mb(rep['rss_mb'])} | "
        f"project {rep['project']}, month {a.report_month}, median of {a.reps} |",
        "",
        f"Incremental / full: **{ratio:.3f}×** (target ≤ 0.05×: {'met' if ratio <= 0.05 else 'MISSED'}). "
        f"Other processes used {max(OTHERS, default=0):.2f} of the cores at most during the timed phases.",
    ]
    if "check" in r:
        lines.append(f"Checked: the incremental result equals a full build, bit for bit ({r['check']['tables']} "
                     f"tables, {r['check']['rows']:,} rows).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--phase-json", help=argparse.SUPPRESS)
    p.add_argument("--gpus", type=int, default=1024, help="GPUs, 8 per node (default: %(default)s)")
    p.add_argument("--months", type=int, default=12, help="months of history (default: %(default)s)")
    p.add_argument("--month-days", type=int, default=30, help="days in a month (default: %(default)s)")
    p.add_argument("--zones", type=int, default=5, help="clusters, one zone each (default: %(default)s)")
    p.add_argument("--day", type=int, help="the day whose jobs are imported last (default: the middle one)")
    p.add_argument("--reps", type=int, default=3, help="report repetitions, median reported (default: %(default)s)")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=None,
                   help="compare the incremental result with a full build (default: on with --quick)")
    p.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True,
                   help="read all of energy_intervals into DuckDB's buffer pool before the timed phases (default); "
                        "--no-warm: the import reads only what it needs, so its peak RSS is its own")
    p.add_argument("--order", choices=("stream", "time"), default="stream",
                   help="how energy_intervals is stored: the generator's stream order (default) or sorted by time")
    p.add_argument("--db", metavar="PATH", help="database to create (kept); default: a temporary one")
    p.add_argument("--markdown-out", metavar="PATH", help="also write the Markdown table to PATH")
    p.add_argument("--quick", action="store_true", help="tiny sizes, to smoke-test the script")
    a = p.parse_args(argv)
    if a.phase_json:
        print(json.dumps(child(json.loads(a.phase_json))))
        return 0
    if a.quick:
        a.gpus, a.months, a.month_days = 32, 2, 3
        a.check = True if a.check is None else a.check
    days = a.months * a.month_days
    a.day = days // 2 if a.day is None else a.day
    a.report_month = "2024-03"
    jobs = max(50, bench_model.scaled_jobs(argparse.Namespace(gpus=1024, days=30, jobs=5000), a.gpus, days))
    tmp = None
    path = a.db
    if path is None:
        tmp = tempfile.mkdtemp(prefix="bench-incremental-")
        path = str(Path(tmp) / "bench.duckdb")
    try:
        spec = {"path": path, "gpus": a.gpus, "days": days, "jobs": jobs, "zones": a.zones, "day": a.day,
                "reps": a.reps, "month": a.report_month, "warm": a.warm, "order": a.order}
        r = {"generate": run({**spec, "phase": "generate"})}
        r["full"] = run({**spec, "phase": "full"})
        r["incremental"] = run({**spec, "phase": "incremental"})
        r["report"] = run({**spec, "phase": "report"})
        if a.check:
            r["check"] = run({**spec, "phase": "check"})
        text = markdown(a, r)
        print(text)
        if a.markdown_out:
            Path(a.markdown_out).write_text(text)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
