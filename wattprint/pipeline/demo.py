"""`wattprint demo`: the report set a newcomer sees first, built on any machine with no GPU and no server.

A simulated month (2026-10) of two 16-GPU H100 clusters (`wattprint/pipeline/demo_fleet.py`: power from the real
H100 trace, host CPU (RAPL) energy and the jobs' CPU time, a ledger of three projects, hourly grid intensity per
zone) goes through the production code:

1. the exporter's counters are read by `pipeline.ingest.ingest` from an in-process Prometheus-shaped API;
2. the ledger CSV by `pipeline.sources.jobs` and `pipeline.store.write_jobs` (as `wattprint jobs import`);
3. the intensity CSV by `pipeline.sources.intensity` + `check_points` + `store.write_intensity`
   (as `wattprint intensity import --format csv`), and a WattTime-style co2_moer series for the us-west-2 zone
   (`demo_moer.py`, synthetic) the same way as `--format watttime-json`: the marginal signal, stored beside the
   average one and shown in the reports' marginal section, never in the headline;
4. `pipeline.model.rebuild` with the config written next to them (as every verb);
5. the reports by `pipeline.report.compute.build_report` and `pipeline.report.run.render` (as `wattprint
   report`), the model card by `co2_metadata` + `modelcard.update_file` (as `--format model-card`).

Everything lands in ./wattprint-demo/ (or --out). The reports are dated at the end of the month
(`generated_at` 2026-11-01T00:00:00Z), so one seed gives identical files on every run.

`wattprint demo --exporter` is the exporter side instead: a real wattprint-exporter in-process on
127.0.0.1 (replay backend on the real H100 trace, jobs assigned by a mapping directory), scraped over HTTP,
with the energy per GPU, per job and idle, and the conservation check.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .errors import InputError

if TYPE_CHECKING:
    from .report.types import Report

DEFAULT_OUT = "wattprint-demo"
MARKER = ".wattprint-demo"
MARKER_TEXT = ("This folder was written by `wattprint demo`. Running it again replaces the files it wrote here\n"
               "(and only those); delete the folder when you are done.\n")


@dataclass(frozen=True)
class DemoFiles:
    out: Path
    project: str
    month: str

    @property
    def db(self) -> Path:
        return self.out / "wattprint.duckdb"

    @property
    def config(self) -> Path:
        return self.out / "wattprint.yaml"

    @property
    def jobs(self) -> Path:
        return self.out / "jobs.csv"

    @property
    def intensity(self) -> Path:
        return self.out / "intensity.csv"

    @property
    def marginal(self) -> Path:
        return self.out / "watttime-moer.json"

    @property
    def model_card(self) -> Path:
        return self.out / "MODEL_CARD.md"

    def report(self, scope: str, fmt: str) -> Path:
        return self.out / f"report-{scope}-{self.month}.{fmt}"

    def listing(self) -> list[tuple[Path, str]]:
        """Every file the demo writes, with what it is."""
        p, m = self.project, self.month
        out = [
            (self.db, "DuckDB: samples, jobs, intensity and the results (fct_job_gpu_hour, fct_job_cpu_hour, ...)"),
            (self.config, "the cluster config the build used (2 clusters, zones, PUE)"),
            (self.jobs, "the job ledger, imported as `wattprint jobs import --format csv` would"),
            (self.intensity, "hourly grid intensity per zone, imported as `wattprint intensity import --format csv`"),
            (self.marginal, "a synthetic WattTime-style 5-minute co2_moer series for aws:us-west-2 (the marginal "
                            "signal), imported as `wattprint intensity import --format watttime-json` would"),
        ]
        for scope, who in ((p, f"project {p}"), ("all", "all projects")):
            out += [(self.report(scope, "md"), f"{who}, {m}: Markdown (model-card style)"),
                    (self.report(scope, "html"), f"{who}, {m}: self-contained HTML page with charts"),
                    (self.report(scope, "json"), f"{who}, {m}: JSON (report-v1 schema)"),
                    (self.report(scope, "csv"), f"{who}, {m}: CSV, one row per number")]
        out.append((self.model_card, f"a model card with Hugging Face co2_eq_emissions for {p}"))
        return out


def _prepare(out: Path) -> None:
    """Create the folder, or reuse one a previous demo wrote; refuse anything else."""
    if out.exists() and not out.is_dir():
        raise InputError("--out", f"{out} exists and is not a folder", "give a folder name, e.g. --out wattprint-demo")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise InputError("--out", f"{out} exists, is not empty and was not written by `wattprint demo`",
                         "give a new or empty folder; nothing was written")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text(MARKER_TEXT, encoding="utf-8")
    except OSError as exc:
        raise InputError("--out", f"cannot write to {out}: {exc.strerror}", "give a writable folder") from None


def _one_thread(con: Any) -> None:
    """Sums of doubles over DuckDB's parallel scans come out in a different order from run to run, so the last
    bits of a figure (and now and then a rounded digit) would change; one thread makes a seed's files identical."""
    con.execute("SET threads = 1")


def _say(quiet: bool, text: str = "") -> None:
    if not quiet:
        print(text, flush=True)


def run_demo(out: str | None = None, seed: int = 0, quiet: bool = False) -> int:
    from . import db, demo_node
    from .demo_fleet import (
        CLUSTERS,
        CPU_MODEL,
        HEADLINE_PROJECT,
        MONTH,
        NODE_CORES,
        SOCKETS,
        STEP_S,
        T0,
        T1,
        FleetPrometheus,
        config_yaml,
        generate,
        intensity_csv,
        ledger_csv,
    )
    from .demo_moer import ZONE as MOER_ZONE
    from .demo_moer import watttime_json
    from .ingest import ingest
    from .model import rebuild
    from .promapi import PromClient
    from .settings import load_settings
    from .sources.intensity import check_points, parse
    from .sources.jobs import read_jobs
    from .store import write_intensity, write_jobs

    started = time.perf_counter()
    files = DemoFiles(Path(out or DEFAULT_OUT), HEADLINE_PROJECT, MONTH)
    _prepare(files.out)
    for path, _ in files.listing():
        path.unlink(missing_ok=True)
    Path(f"{files.db}.wal").unlink(missing_ok=True)

    fleet = generate(seed)
    lv = fleet.levels
    n_gpus = len(fleet.gpus)
    _say(quiet, f"wattprint demo: {MONTH} on two simulated clusters of {n_gpus // 2} NVIDIA H100 each (seed {seed}); "
                "every step below is the production code")
    for c in CLUSTERS:
        _say(quiet, f"  {c.name}: {c.provider}, {c.region}, zone {c.zone}, PUE {c.pue:g}, nodes "
                    f"{', '.join(c.nodes)} (8 GPUs each)")
    _say(quiet, f"  power from the real H100 trace ({lv.source}): matmul {lv.matmul:.0f} W, duty-cycled "
                f"{lv.duty50:.0f} W, memory-bound {lv.copy:.0f} W, idle with a CUDA context {lv.idle_ctx:.0f} W; "
                f"no job: {lv.no_context:.0f} W")
    no_rapl = [h.name for h in fleet.host.hosts if not h.rapl]
    _say(quiet, f"  hosts: {SOCKETS} x {CPU_MODEL} per node ({NODE_CORES} cores), RAPL package and DRAM energy split "
                f"among the jobs by cgroup CPU time; RAPL not readable on {', '.join(no_rapl) or 'none'}")

    _say(quiet, f"  node power (BMC): {demo_node.COUNTER_HOST} through the exporter's Redfish collector, "
                f"{demo_node.GAUGE_HOST} through ipmi_exporter (a {demo_node.GLITCH_HOURS}-hour glitch below its "
                "GPUs); none on the AWS nodes: the node layer is listed beside the headline")

    files.config.write_text(config_yaml(), encoding="utf-8")
    files.jobs.write_text(ledger_csv(fleet), encoding="utf-8")
    files.intensity.write_text(intensity_csv(fleet), encoding="utf-8")
    files.marginal.write_text(watttime_json(seed), encoding="utf-8")
    settings = load_settings(str(files.config))

    con = db.connect(files.db)
    _one_thread(con)
    try:
        # 1. the exporter's counters, through the ingest (chunks, series, samples, coverage)
        stats = ingest(con, cast(PromClient, FleetPrometheus(fleet)), settings.queries(), T0, T1, STEP_S,
                       endpoint="demo-fleet (in-process)")
        per_kind = ", ".join(f"{k} {n:,}" for k, n in sorted(stats.per_kind.items()) if n)
        (n_series,) = con.execute("SELECT count(*) FROM series").fetchall()[0]
        _say(quiet, f"ingest: {stats.samples:,} samples of {n_series:,} exporter series at {STEP_S} s in "
                    f"{stats.chunks} query_range chunks ({per_kind})")
        # 2. the ledger and 3. the intensity: parsed and checked whole, then stored with the rebuild, in one
        # transaction, as `wattprint jobs import` and `wattprint intensity import` do
        jobs = read_jobs(files.jobs, "csv", default_cluster=settings.default_cluster, rules=settings.rules(None))
        points = check_points(parse(files.intensity, "csv", basis=settings.basis).points)
        moer = check_points(parse(files.marginal, "watttime-json", zone=MOER_ZONE).points)
        with db.transaction(con):
            written = write_jobs(con, list(jobs.records))
            hours = write_intensity(con, points)
            marginal = write_intensity(con, moer)    # its own signal: the average hours above stay as they are
            summary = rebuild(con, settings.build_settings())       # 4.
        projects = sorted({r.project for r in jobs.records})
        _say(quiet, f"jobs import: {written.written} jobs of {len(projects)} projects ({', '.join(projects)}) from "
                    f"{files.jobs.name}; {sum(not j.in_ledger for j in fleet.jobs)} more ran without a ledger row")
        _say(quiet, f"intensity import: {hours.written:,} zone-hours for "
                    f"{', '.join(sorted({p.zone for p in points}))} from {files.intensity.name}")
        _say(quiet, f"marginal import: {len(moer):,} co2_moer points as {marginal.written:,} zone-hours of the "
                    f"marginal signal for {MOER_ZONE} from {files.marginal.name} (beside the average intensity, "
                    "never in the headline)")
        _say(quiet, f"build: {summary.fct_rows:,} (job, GPU, hour) rows, {summary.energy_j / 3.6e6:,.1f} kWh of GPU "
                    f"energy, {summary.emissions_g / 1000:,.1f} kgCO2eq with PUE; {summary.intervals:,} energy "
                    f"intervals, {summary.gaps} gaps")
        _say(quiet, f"       {summary.cpu_rows:,} (job, socket, domain, hour) rows, "
                    f"{summary.cpu_energy_j / 3.6e6:,.1f} kWh of host CPU energy (package + DRAM, jobs and host idle), "
                    f"{summary.cpu_emissions_g / 1000:,.1f} kgCO2eq with PUE; {summary.cpu_seconds / 3600:,.0f} CPU "
                    "core-hours of jobs")
    finally:
        con.close()

    project_report, fleet_report = _reports(files, settings)
    _summary(quiet, files, project_report, fleet_report)
    _say(quiet, f"\nwattprint demo: done in {time.perf_counter() - started:.1f} s")
    return 0


def _reports(files: DemoFiles, settings: Any) -> tuple[Report, Report]:
    """The project and all-projects reports of the month in every format, and the model card."""
    from . import db
    from .hardware import DEFAULT_LIFETIME_YEARS, DEFAULT_UTILISATION
    from .report.compute import build_report, finite
    from .report.markdown import render as markdown
    from .report.modelcard import update_file
    from .report.run import co2_metadata, render
    from .report.scope import ReportOptions
    from .report.window import month

    window = month(files.month)
    rc = settings.config.report
    generated_at = window.end                        # the month just closed: fixed, so runs are reproducible
    reports = []
    con = db.connect(files.db, read_only=True)        # as `wattprint report` reads it
    _one_thread(con)
    try:
        for project in (files.project, None):
            options = ReportOptions(window=window, project=project, layers=rc.layers, idle_policy=rc.idle_policy,
                                    lifetime_years=rc.lifetime_years or DEFAULT_LIFETIME_YEARS,
                                    utilisation=rc.utilisation or DEFAULT_UTILISATION, generated_at=generated_at,
                                    scope2_basis=rc.scope2_basis)
            report = build_report(con, settings, options)
            if not finite(report):
                raise RuntimeError("report has a NaN or infinite number")
            for fmt in ("md", "html", "json", "csv"):
                files.report(project or "all", fmt).write_text(render(report, fmt), encoding="utf-8")
            reports.append(report)
    finally:
        con.close()
    update_file(files.model_card, co2_metadata(reports[0]), body_if_new=markdown(reports[0]))
    return reports[0], reports[1]


def _summary(quiet: bool, files: DemoFiles, project: Report, fleet_report: Report) -> None:
    if quiet:
        return
    md = files.report(files.project, "md").read_text(encoding="utf-8")
    start = md.index("## Environmental Impact")
    end = md.index("\nMethod: ", start)
    print(f"\n--- {files.report(files.project, 'md').name} (the model-card section) ---\n")
    print(md[start:end].rstrip() + "\n")
    dq = project.data_quality
    print(f"Data quality: {dq.energy.counter:.1%} of the energy from hardware counters, "
          f"{dq.intensity.hourly:.1%} priced with hourly intensity"
          + (f"; warnings: {'; '.join(dq.warnings)}" if dq.warnings else "; no warnings"))
    w = project.whatif
    if w.best:
        print(f"What-if: the same hours on {w.best.cluster} ({w.best.zone}) would have emitted "
              f"{w.best.emissions_kg:,.0f} kg instead of {w.actual_kg:,.0f} kg")
    m = project.marginal
    if m is not None:       # its own figure, beside the headline: never added to it
        print(f"Marginal (consequential, not in the headline): {m.total.marginal_kg:,.0f} kg at the marginal rate for "
              f"{m.total.covered_share:.1%} of the energy (the hours {files.marginal.name} covers)")

    print(f"\n--- {files.report('all', 'md').name} ---\n")
    fleet = fleet_report.fleet
    assert fleet is not None                          # the all-projects report
    rows = [(p.project, p.gpu_hours, p.energy_kwh, p.cpu_hours or 0.0, p.cpu_energy_kwh or 0.0, p.emissions_kg)
            for p in fleet.projects]
    width = max(len(r[0]) for r in rows)
    print(f"{'project':<{width}}  {'GPU-hours':>9}  {'GPU kWh':>8}  {'CPU core-h':>10}  {'CPU kWh':>8}  {'kgCO2eq':>8}")
    for name, gh, kwh, ch, ckwh, kg in rows:
        print(f"{name:<{width}}  {gh:>9,.0f}  {kwh:>8,.0f}  {ch:>10,.0f}  {ckwh:>8,.0f}  {kg:>8,.1f}")
    r = fleet.reconciliation
    print(f"Fleet GPU energy {r.fleet_energy_kwh:,.1f} kWh = projects {r.projects_energy_kwh:,.1f} + not in the "
          f"ledger {r.not_in_ledger_kwh:,.1f} + idle apportioned {r.idle_apportioned_kwh:,.1f} + idle with no "
          f"job running {r.idle_unapportioned_kwh:,.1f} kWh")
    h = r.cpu
    if h:
        print(f"Fleet host CPU energy (RAPL) {h.fleet_energy_kwh:,.1f} kWh = projects "
              f"{h.projects_energy_kwh:,.1f} + not in the ledger {h.not_in_ledger_kwh:,.1f} + host idle "
              f"apportioned {h.idle_apportioned_kwh:,.1f} + host idle with no job running "
              f"{h.idle_unapportioned_kwh:,.1f} kWh")
    by_cluster: dict[str, float] = defaultdict(float)
    for c in fleet.clusters:
        by_cluster[c.cluster] += c.idle_share
    print("Idle share of GPU energy: " + ", ".join(f"{k} {v:.0%}" for k, v in sorted(by_cluster.items())))

    print(f"\nFiles in {files.out}{os.sep} ({files.out.resolve()}):")
    listing = files.listing()
    width = max(len(p.name) for p, _ in listing)
    for path, what in listing:
        print(f"  {path.name:<{width}}  {what}")
    print(f"\nAsk it more: wattprint report --db {files.db} --config {files.config} --project {files.project} "
          f"--month {files.month} --layers all")


# -- the exporter side (`wattprint demo --exporter`) -------------------------------------------------------

# Which demo jobs run on which virtual GPU: GPU 1 is shared, the last GPU is left idle.
DEMO_JOBS = {0: ["pretrain-1001"], 1: ["finetune-1002", "eval-1003"]}


def _scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    body = requests.get(url, timeout=5).text
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            out[s.name].append((s.labels, s.value))
    return out


def run_exporter_demo(gpus: int = 4, seconds: float = 6.0) -> int:
    from wattprint.common.logs import setup_logging
    from wattprint.exporter.app import App
    from wattprint.exporter.config import Config

    setup_logging("warning")
    with tempfile.TemporaryDirectory(prefix="wattprint-demo-") as tmp:
        mapping = Path(tmp)
        for index, job_ids in DEMO_JOBS.items():
            if index < gpus:
                (mapping / str(index)).write_text("\n".join(job_ids) + "\n")
        cfg = Config(
            backend="replay", replay_gpus=gpus, poll_interval=0.5, listen_address="127.0.0.1:0",
            job_discovery="mapping-dir", mapping_dir=str(mapping), hostname="demo-node",
            labels=(("cluster", "demo"),),
        )
        app = App(cfg)
        app.start()
        assert app.server is not None
        url = f"http://127.0.0.1:{app.server.port}/metrics"
        try:
            print(f"wattprint demo: replay exporter on {url}, {gpus} virtual H100s replaying a real trace")
            first = _scrape(url)
            time.sleep(seconds)
            last = _scrape(url)
        finally:
            app.shutdown()

    def by_gpu(m: dict[str, list[tuple[dict[str, str], float]]], name: str) -> dict[str, float]:
        return {lab["gpu"]: v for lab, v in m.get(name, [])}

    def by_job(m: dict[str, list[tuple[dict[str, str], float]]]) -> dict[tuple[str, str], float]:
        return {(lab["gpu"], lab["job_id"]): v for lab, v in m.get("wattprint_job_energy_joules_total", [])}

    e0, e1 = by_gpu(first, "wattprint_gpu_energy_joules_total"), by_gpu(last, "wattprint_gpu_energy_joules_total")
    i0, i1 = (by_gpu(first, "wattprint_gpu_idle_energy_joules_total"),
              by_gpu(last, "wattprint_gpu_idle_energy_joules_total"))
    j0, j1 = by_job(first), by_job(last)
    power = by_gpu(last, "wattprint_gpu_power_watts")
    print(f"\nEnergy measured over {seconds:g} s (deltas of the replayed H100 energy counter, joules):")
    print(f"{'gpu':>4} {'power_watts':>12} {'gpu_joules':>11} {'idle_joules':>12}  jobs (joules)")
    worst = 0.0
    for gpu in sorted(e1, key=int):
        de = e1[gpu] - e0.get(gpu, 0.0)
        di = i1.get(gpu, 0.0) - i0.get(gpu, 0.0)
        jobs = {j: v - j0.get((g, j), 0.0) for (g, j), v in j1.items() if g == gpu}
        worst = max(worst, abs(de - di - sum(jobs.values())))
        jobs_txt = ", ".join(f"{j}={v:.1f}" for j, v in sorted(jobs.items())) or "-"
        print(f"{gpu:>4} {power.get(gpu, float('nan')):>12.1f} {de:>11.1f} {di:>12.1f}  {jobs_txt}")
    print(f"\nConservation (per GPU: jobs + idle == GPU energy): largest gap {worst:.3f} J")
    print("Carbon reports from this energy: `wattprint demo` (without --exporter) builds a month of them.")
    return 0 if worst < 0.01 else 1
