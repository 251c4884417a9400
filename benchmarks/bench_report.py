"""Cost of `wattprint report` for one project-month (and for the all-projects month) against the bare DuckDB
aggregate over the same rows of fct_job_gpu_hour.

The data is bench_model.py's synthetic month (its generator is imported, not copied): `--gpus` GPUs on 8-GPU
nodes in `--zones` clusters (one grid zone each, with PUE and annual intensity), one 60 s energy interval per
GPU per minute over `--days` days from 2024-03-01, `--jobs` jobs of ~50 projects and six phases, on the
exporter path (per-job and idle streams). fct_job_gpu_hour is built once with pipeline.model.derive_results
(untimed). The reported project is the one with the most fct rows in the month.

Measured, each in a fresh subprocess of this script so that peak RSS (getrusage ru_maxrss) is per phase, after
an untimed scan of every column of fct_job_gpu_hour, median of --reps (best in brackets):

  baseline     SELECT phase, sum(energy_j), sum(emissions_g) FROM fct_job_gpu_hour WHERE project = ? AND
               hour_ts >= ? AND hour_ts < ? GROUP BY phase, fetched; for the fleet the same with
               job_id IS NOT NULL in place of the project (the rows the fleet report reads);
  report_json  pipeline.report.compute.build_report + the JSON rendering of `wattprint report --format json`,
               in process, on a read-only connection as the verb opens it;
  report_cli   the whole `wattprint report --db ... --month ... [--project ...] --format json --out FILE` as a
               subprocess (interpreter start-up, imports, opening the file, the report, writing the file),
               after one untimed run; the same with --format html when the HTML renderer works (else the
               error is reported and the row skipped). Peak RSS is that of the wattprint processes.

A last, separately timed in-process run sends every statement through a timing proxy and attributes each to
the report section (the function report/compute.py called) that issued it, to show where the report's time goes.

Checked in the run, failing loudly otherwise: for the project and the fleet, each phase's energy_kwh in the
report (in process and from the CLI's JSON) equals the baseline's sum(energy_j) / 3.6e6 for that phase
(1e-9 relative), the phases are the same, and the report's total energy equals the baseline's total.

    .venv/bin/python benchmarks/bench_report.py [--gpus 1024 --days 30 --jobs 5000 --zones 5 --reps 5]
        [--db PATH] [--markdown-out PATH] [--quick]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import bench_model  # noqa: E402  (the generator, machine description and helpers are bench_model's)

REL_TOL = 1e-9
WARM_SQL = "SELECT count(*), max(COLUMNS(*)) FROM fct_job_gpu_hour"
BASE_PROJECT_SQL = ("SELECT phase, sum(energy_j), sum(emissions_g) FROM fct_job_gpu_hour"
                    " WHERE project = ? AND hour_ts >= ? AND hour_ts < ? GROUP BY phase")
BASE_FLEET_SQL = ("SELECT phase, sum(energy_j), sum(emissions_g) FROM fct_job_gpu_hour"
                  " WHERE job_id IS NOT NULL AND hour_ts >= ? AND hour_ts < ? GROUP BY phase")


def month_label() -> str:
    return bench_model.T0[:7]          # the generated data starts on the first of this month


def window():
    from wattprint.pipeline.report.window import month

    return month(month_label())


# --------------------------------------------------------------------------------------------- phases
# Each runs in a fresh subprocess (see child()); what it returns comes back as JSON with its peak RSS.

def phase_build(path: str, zones: int) -> dict:
    """derive_results once (untimed in the tables), then the report's project: the most fct rows in the month."""
    from wattprint.pipeline import db
    from wattprint.pipeline.model import derive_results

    con = db.connect(path)
    t0 = time.perf_counter()
    summary = derive_results(con, bench_model.settings(zones))
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - t0
    w = window()
    project, rows = con.execute(
        "SELECT project, count(*) FROM fct_job_gpu_hour WHERE project IS NOT NULL AND hour_ts >= ? AND hour_ts < ?"
        " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1", [w.start, w.end]).fetchone()
    fleet_rows = con.execute("SELECT count(*) FROM fct_job_gpu_hour WHERE job_id IS NOT NULL AND hour_ts >= ?"
                             " AND hour_ts < ?", [w.start, w.end]).fetchone()[0]
    month_rows = con.execute("SELECT count(*) FROM fct_job_gpu_hour WHERE hour_ts >= ? AND hour_ts < ?",
                             [w.start, w.end]).fetchone()[0]
    projects = con.execute("SELECT count(DISTINCT project) FROM fct_job_gpu_hour WHERE hour_ts >= ?"
                           " AND hour_ts < ?", [w.start, w.end]).fetchone()[0]
    con.close()
    return {"seconds": seconds, "fct_rows": summary.fct_rows, "intervals": summary.intervals, "project": project,
            "project_rows": rows, "fleet_rows": fleet_rows, "month_rows": month_rows, "projects": projects}


def open_ro(path: str):
    from wattprint.pipeline import db

    con = db.connect(path, read_only=True)          # as `wattprint report` opens it
    con.execute(WARM_SQL).fetchall()
    return con


def phase_baseline(path: str, project: str, reps: int) -> dict:
    con = open_ro(path)
    w = window()
    out: dict[str, Any] = {}
    for key, sql, params in (("project", BASE_PROJECT_SQL, [project, w.start, w.end]),
                             ("fleet", BASE_FLEET_SQL, [w.start, w.end])):
        times, rows = [], []
        for _ in range(reps):
            t0 = time.perf_counter()
            rows = con.execute(sql, params).fetchall()
            times.append(time.perf_counter() - t0)
        out[key] = {"seconds": bench_model.median(times), "all": times,
                    "phases": {p: [e, g] for p, e, g in rows}}
    con.close()
    return out


def report_options(project: str | None):
    from wattprint.pipeline.report.scope import ReportOptions

    return ReportOptions(window=window(), project=project)


class _Timed:
    """A connection proxy for the breakdown run: times every statement (execute + fetch) and files it under the
    report section that issued it: the function build_report called (report/compute.py runs the sections in
    order), or build_report itself; the scope join and the intensity rule under their SQL file's name."""

    APART = ("rpt_scope", "macros_intensity")

    def __init__(self, con, log: dict[str, list[float]]):
        self._con, self._log = con, log

    def _where(self) -> str:
        f = sys._getframe(2)
        sql_name, section = None, None
        while f is not None:
            code = f.f_code
            if code.co_name == "run_sql" and code.co_filename.endswith(os.path.join("pipeline", "db.py")):
                sql_name = f.f_locals.get("name")
            if code.co_name == "build_report" and code.co_filename.endswith(os.path.join("report", "compute.py")):
                return f"{sql_name}.sql" if sql_name in self.APART else section or "build_report"
            section = code.co_name
            f = f.f_back
        return "?"

    def execute(self, sql, params=None):
        key = self._where()
        t0 = time.perf_counter()
        self._con.execute(sql, params) if params is not None else self._con.execute(sql)
        self._log[key].append(time.perf_counter() - t0)
        return _Fetch(self._con, self._log, key)

    def executemany(self, sql, params):
        key = self._where()
        t0 = time.perf_counter()
        self._con.executemany(sql, params)
        self._log[key].append(time.perf_counter() - t0)
        return self

    def __getattr__(self, name):
        return getattr(self._con, name)


class _Fetch:
    def __init__(self, con, log: dict[str, list[float]], key: str):
        self._con, self._log, self._key = con, log, key

    def _timed(self, fn):
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self._log[self._key][-1] += time.perf_counter() - t0

    @property
    def description(self):
        return self._con.description

    def fetchall(self):
        return self._timed(self._con.fetchall)

    def fetchone(self):
        return self._timed(self._con.fetchone)


def phase_report(path: str, project: str | None, reps: int) -> dict:
    from wattprint.pipeline.report.compute import build_report, finite
    from wattprint.pipeline.report.run import render
    from wattprint.pipeline.settings import load_settings

    con = open_ro(path)
    settings = load_settings(None)     # clusters, zones and PUE come from the file's clusters table (bench_model)
    o = report_options(project)
    times, builds, renders = [], [], []
    report = None
    text = ""
    for _ in range(reps):
        t0 = time.perf_counter()
        report = build_report(con, settings, o)
        t1 = time.perf_counter()
        text = render(report, "json")
        t2 = time.perf_counter()
        times.append(t2 - t0)
        builds.append(t1 - t0)
        renders.append(t2 - t1)
    if report is None or not finite(report):
        raise SystemExit("REPORT HAS A NaN OR INFINITE NUMBER")
    # the breakdown run: every statement timed and filed under its report section
    log: dict[str, list[float]] = defaultdict(list)
    t0 = time.perf_counter()
    build_report(_Timed(con, log), settings, o)    # type: ignore[arg-type]
    t1 = time.perf_counter()
    render(report, "json")
    t2 = time.perf_counter()
    con.close()
    return {"seconds": bench_model.median(times), "all": times, "build": bench_model.median(builds),
            "render": bench_model.median(renders), "json_bytes": len(text.encode()),
            "phases": {p.phase: p.energy_kwh for p in report.phases},
            "total_kwh": report.total.energy_kwh, "whatif_options": len(report.whatif.options),
            "breakdown": {"build": t1 - t0, "render": t2 - t1,
                          "sql": {k: [len(v), sum(v), v] for k, v in log.items()}}}


def wattprint_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("wattprint")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "wattprint.pipeline.cli"]


def phase_cli(path: str, project: str | None, fmt: str, reps: int, out_dir: str) -> dict:
    """The verb as a user runs it; this process's only children are those runs, so RUSAGE_CHILDREN's
    ru_maxrss is their peak RSS."""
    env = {k: v for k, v in os.environ.items() if k not in ("WATTPRINT_CONFIG", "WATTPRINT_DB")}
    out = str(Path(out_dir) / f"report-{'project' if project else 'fleet'}.{fmt}")
    cmd = [*wattprint_cmd(), "report", "--db", path, "--month", month_label(), "--format", fmt, "--out", out,
           "--quiet"]
    if project:
        cmd += ["--project", project]
    times = []
    for i in range(reps + 1):                   # the first run is untimed
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=str(ROOT), env=env)
        dt_s = time.perf_counter() - t0
        if p.returncode != 0:
            return {"failed": f"exit {p.returncode}: " + (p.stderr.strip().splitlines() or ["(no output)"])[-1][:300],
                    "cmd": " ".join(cmd[1:])}
        if i:
            times.append(dt_s)
    res: dict[str, Any] = {"seconds": bench_model.median(times), "all": times, "bytes": Path(out).stat().st_size,
                           "cmd": " ".join(["wattprint", *cmd[1:]]),
                           "rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}
    if fmt == "json":
        rep = json.loads(Path(out).read_text())
        res["phases"] = {p["phase"]: p["energy_kwh"] for p in rep["phases"]}
        res["total_kwh"] = rep["total"]["energy_kwh"]
    return res


def phase_startup(reps: int) -> dict:
    """The floor of any CLI run: `wattprint --version` (interpreter start-up, the CLI module's imports)."""
    times = []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        subprocess.run([*wattprint_cmd(), "--version"], capture_output=True, check=True, cwd=str(ROOT))
        if i:
            times.append(time.perf_counter() - t0)
    return {"seconds": bench_model.median(times), "all": times,
            "rss_mb_children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}


def child(spec: dict) -> dict:
    kind = spec["phase"]
    busy0, own0 = bench_model.busy_cpu_s()
    t0 = time.perf_counter()
    if kind == "generate":
        out = bench_model.generate(spec["path"], "exporter", spec["gpus"], spec["days"], spec["jobs"], spec["zones"])
    elif kind == "build":
        out = phase_build(spec["path"], spec["zones"])
    elif kind == "baseline":
        out = phase_baseline(spec["path"], spec["project"], spec["reps"])
    elif kind == "report":
        out = phase_report(spec["path"], spec["project"], spec["reps"])
    elif kind == "cli":
        out = phase_cli(spec["path"], spec["project"], spec["format"], spec["reps"], spec["out_dir"])
    elif kind == "startup":
        out = phase_startup(spec["reps"])
    else:
        raise ValueError(kind)
    busy1, own1 = bench_model.busy_cpu_s()
    ru_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own1 += ru_children.ru_utime + ru_children.ru_stime   # the CLI runs are this phase's own work
    out["wall"] = time.perf_counter() - t0
    out["others_cores"] = max(0.0, (busy1 - busy0) - (own1 - own0)) / out["wall"]
    out.setdefault("rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)   # KiB on Linux
    return out


OTHERS: list[float] = []


def run_child(spec: dict) -> dict:
    what = spec["phase"] + (f" {spec['format']}" if "format" in spec else "") + (
        f" {'project' if spec.get('project') else 'fleet'}" if spec["phase"] in ("report", "cli") else "")
    return bench_model.run_script_child(__file__, spec, f"{what:<16}", spec["phase"] not in ("generate", "build"),
                                        OTHERS)


# --------------------------------------------------------------------------------------------- checks

def check(scope: str, where: str, base: dict, phases: dict, total_kwh: float) -> None:
    """The report's per-phase and total energy against the bare aggregate's (1e-9 relative)."""
    want = {p: e / 3.6e6 for p, (e, _g) in base["phases"].items()}
    bad = []
    if set(want) != set(phases):
        bad.append(f"phases differ: baseline {sorted(want)}, report {sorted(phases)}")
    for p, kwh in want.items():
        got = phases.get(p)
        if got is None or abs(got - kwh) > REL_TOL * abs(kwh):
            bad.append(f"phase {p}: report {got!r} kWh, baseline {kwh!r} kWh")
    whole = sum(e for e, _g in base["phases"].values()) / 3.6e6
    if abs(total_kwh - whole) > REL_TOL * abs(whole):
        bad.append(f"total: report {total_kwh!r} kWh, baseline {whole!r} kWh")
    if bad:
        raise SystemExit(f"REPORT != BASELINE ({scope}, {where}):\n  " + "\n  ".join(bad))


# --------------------------------------------------------------------------------------------- report

def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:,.2f} s"


SECTION_NAMES = {
    "build_report": "staleness check, row count",
    "check_scope": "project/phase check",
    "rates": "embodied rates",
    "rpt_scope.sql": "rpt_scope.sql (scope join, idle pro-rata per cluster-hour)",
    "previous": "previous window: per project",
    "phase_blocks": "phase blocks (with wall-clock hours)",
    "hardware_total": "hardware total",
    "cpu_hardware_total": "CPU hardware total",
    "quality": "data quality",
    "whatif": "what-if: hourly profile, pricing",
    "macros_intensity.sql": "what-if: macros_intensity.sql",
    "daily": "daily series",
    "hourly": "hourly series",
    "fleet": "fleet: per project, clusters, top jobs, reconciliation",
}


def markdown(a: argparse.Namespace, r: dict) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    g, b = r["gen"], r["build"]
    out = [
        f"Machine: {bench_model.machine()}. Run: {now}.",
        "",
        f"Data (bench_model.py's generator, exporter path, {g['wall']:.1f} s): {a.gpus} GPUs on {a.gpus // 8} nodes "
        f"in {a.zones} clusters (one zone each), {a.days} days at 60 s = {g['rows']:,} energy intervals, "
        f"{g['jobs']:,} jobs; `derive_results` built {b['fct_rows']:,} fct_job_gpu_hour rows in "
        f"{b['seconds']:.1f} s (untimed here). Month {month_label()}: {b['month_rows']:,} fct rows, "
        f"{b['fleet_rows']:,} of them job rows of {b['projects']} projects (the fleet report's scope); project "
        f"**{b['project']}** (the most rows): {b['project_rows']:,} rows. Times are wall seconds "
        f"(time.perf_counter), median of {a.reps} (best in brackets), each phase in a fresh process after an "
        f"untimed scan of every column of fct_job_gpu_hour; the CLI rows after one untimed run. DuckDB threads and "
        f"memory_limit default. Other processes used {sum(OTHERS) / max(1, len(OTHERS)):.2f} of the "
        f"{os.cpu_count()} cores on average during the timed phases (at most {max(OTHERS, default=0):.2f}).",
        "",
        "Baseline: `SELECT phase, sum(energy_j), sum(emissions_g) FROM fct_job_gpu_hour WHERE project = ? AND "
        "hour_ts >= ? AND hour_ts < ? GROUP BY phase` (fleet: `job_id IS NOT NULL` in place of the project), "
        "fetched. Checked in the run: every phase's energy_kwh in the report (in process and the CLI's JSON) and "
        "the total equal the baseline's sum(energy_j) / 3.6e6 (1e-9 relative).",
        "",
        "| scope | what | rows | time (best) | / baseline (best / best) | peak RSS |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for scope, rows in (("project", b["project_rows"]), ("fleet", b["fleet_rows"])):
        base = r["base"][scope]
        bt, bb = base["seconds"], min(base["all"])
        label = f"project {b['project']}" if scope == "project" else "all projects"
        out.append(f"| {label} | baseline (bare aggregate) | {rows:,} | {ms(bt)} ({ms(bb)}) | 1.00× | "
                   f"{r['base']['rss_mb']:,.0f} MB |")
        rep = r["report"][scope]
        out.append(f"| {label} | `build_report` + JSON, in process | {rows:,} | {ms(rep['seconds'])} "
                   f"({ms(min(rep['all']))}) | {rep['seconds'] / bt:,.0f}× ({min(rep['all']) / bb:,.0f}×) | "
                   f"{rep['rss_mb']:,.0f} MB |")
        for fmt in ("json", "html"):
            c = r["cli"][scope].get(fmt)
            if c is None or "failed" in c:
                continue
            out.append(f"| {label} | `wattprint report --format {fmt}` (CLI, whole process) | {rows:,} | "
                       f"{ms(c['seconds'])} ({ms(min(c['all']))}) | {c['seconds'] / bt:,.0f}× "
                       f"({min(c['all']) / bb:,.0f}×) | {c['rss_mb']:,.0f} MB |")
    st = r["startup"]
    out += [
        "",
        f"Floor of any CLI run, `wattprint --version` (interpreter start-up and the CLI's imports): "
        f"{ms(st['seconds'])} (best {ms(min(st['all']))}), peak RSS {st['rss_mb_children']:,.0f} MB.",
    ]
    failed = [(s, f, c) for s in ("project", "fleet") for f, c in r["cli"][s].items() if "failed" in c]
    for s, f, c in failed:
        out += ["", f"`wattprint report --format {f}` ({s}) FAILED, row skipped: {c['failed']}"]
    out += [
        "",
        "Where the in-process report's time goes: one more run with every statement timed (execute + fetch) "
        "through a proxy connection and filed under the report section that issued it; \"Python\" is the rest "
        "of `build_report`. A `.sql` statement run more than once lists each run, in order.",
        "",
        "| section | project: statements | project: time | fleet: statements | fleet: time |",
        "|---|---:|---:|---:|---:|",
    ]
    bp, bf = r["report"]["project"]["breakdown"], r["report"]["fleet"]["breakdown"]
    keys = list(dict.fromkeys([*SECTION_NAMES, *bp["sql"], *bf["sql"]]))

    def cell(bd: dict, k: str) -> str:
        n, t, each = bd["sql"].get(k, [0, 0.0, []])
        if not n:
            return "- | -"
        parts = f" ({' + '.join(ms(x) for x in each)})" if k.endswith(".sql") and n > 1 else ""
        return f"{n} | {ms(t)}{parts}"

    for k in keys:
        if k in bp["sql"] or k in bf["sql"]:
            out.append(f"| {SECTION_NAMES.get(k, k)} | {cell(bp, k)} | {cell(bf, k)} |")
    for label, key in (("Python (outside SQL)", None), ("JSON rendering", "render"), ("total", "total")):
        vals = []
        for bd in (bp, bf):
            sql = sum(t for _n, t, _each in bd["sql"].values())
            v = bd["build"] - sql if key is None else bd["render"] if key == "render" else bd["build"] + bd["render"]
            vals.append(ms(v))
        out.append(f"| {label} | | {vals[0]} | | {vals[1]} |")
    rp, rf = r["report"]["project"], r["report"]["fleet"]
    out += ["", f"JSON report size: project {rp['json_bytes']:,} bytes, fleet {rf['json_bytes']:,} bytes; what-if "
            f"priced in {rp['whatif_options']} zones."]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--phase-json", help=argparse.SUPPRESS)
    p.add_argument("--gpus", type=int, default=1024, help="GPUs, 8 per node (default: %(default)s)")
    p.add_argument("--days", type=int, default=30,
                   help="days of 60 s intervals from 2024-03-01 (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=5000, help="jobs in the ledger (default: %(default)s)")
    p.add_argument("--zones", type=int, default=5, help="clusters, one grid zone each (default: %(default)s)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions, median reported (default: %(default)s)")
    p.add_argument("--skip-html", action="store_true", help="do not time --format html")
    p.add_argument("--db", metavar="PATH", help="database to create (and keep); default: a temporary one")
    p.add_argument("--markdown-out", metavar="PATH", help="also write the Markdown tables to PATH")
    p.add_argument("--quick", action="store_true", help="tiny sizes, to smoke-test the script (a few seconds)")
    a = p.parse_args(argv)
    if a.phase_json:
        print(json.dumps(child(json.loads(a.phase_json))))
        return 0
    if a.quick:
        a.gpus, a.days, a.jobs, a.reps = 64, 3, 40, 1
    if not 1 <= a.days <= 31:
        raise SystemExit("--days must be 1..31 (the report covers the month 2024-03)")

    with tempfile.TemporaryDirectory(prefix="wattprint-bench-report-") as tmp:
        path = str(Path(a.db).resolve() if a.db else Path(tmp) / "bench.duckdb")
        r: dict = {"gen": run_child({"phase": "generate", "path": path, "gpus": a.gpus, "days": a.days,
                                     "jobs": a.jobs, "zones": a.zones})}
        r["build"] = run_child({"phase": "build", "path": path, "zones": a.zones})
        os.sync()
        project = r["build"]["project"]
        if not project:
            raise SystemExit("no project has rows in the month: too few --jobs?")
        r["base"] = run_child({"phase": "baseline", "path": path, "project": project, "reps": a.reps})
        r["report"], r["cli"] = {}, {}
        for scope, proj in (("project", project), ("fleet", None)):
            rep = run_child({"phase": "report", "path": path, "project": proj, "reps": a.reps})
            check(scope, "in process", r["base"][scope], rep["phases"], rep["total_kwh"])
            if rep["whatif_options"] != a.zones:
                raise SystemExit(f"the what-if priced {rep['whatif_options']} zones, not {a.zones}: are the "
                                 "clusters' zones in the file?")
            r["report"][scope] = rep
            r["cli"][scope] = {}
            for fmt in ("json",) if a.skip_html else ("json", "html"):
                c = run_child({"phase": "cli", "path": path, "project": proj, "format": fmt, "reps": a.reps,
                               "out_dir": tmp})
                if fmt == "json":
                    if "failed" in c:
                        raise SystemExit(f"`{c['cmd']}` failed: {c['failed']}")
                    check(scope, "CLI JSON", r["base"][scope], c["phases"], c["total_kwh"])
                elif "failed" in c:
                    print(f"# html {scope}: FAILED, skipped: {c['failed']}", file=sys.stderr)
                r["cli"][scope][fmt] = c
        r["startup"] = run_child({"phase": "startup", "reps": a.reps})
    text = markdown(a, r)
    print(text, end="")
    if a.markdown_out:
        Path(a.markdown_out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
