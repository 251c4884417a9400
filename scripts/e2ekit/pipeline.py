"""The real `wattprint` CLI over the stack's Prometheus: jobs import, ingest, reports."""


from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from wattprint.pipeline.db import duckdb_config

from .plan import KUBE_CLUSTER, REPO, STEP, Plan, StackError, Window, config_yaml, iso, ledger_csv
from .procs import command

# -- the pipeline ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    db: Path
    reports: dict[str, dict[str, Any]]       # project -> JSON report
    fleet: dict[str, Any]
    files: list[Path]
    samples: int
    series: int
    ingest_output: str
    seconds: float


def cli(*args: str, timeout: float = 600) -> str:
    argv = [*command("wattprint"), *args]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise StackError(f"`wattprint {' '.join(args)}` exited {done.returncode}:\n{done.stderr.strip()}")
    return done.stdout


def run_pipeline(work: Path, prometheus_url: str, plan: Plan, window: Window, *, config_text: str | None = None,
                 ledger_text: str | None = None, formats: Sequence[str] = ("json", "md")) -> Outcome:
    """The real CLI, into a fresh DuckDB file under `work`: jobs import, ingest [S, E], reports."""
    t0 = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    cfg, ledger, db = work / "wattprint.yaml", work / "ledger.csv", work / "wattprint.duckdb"
    cfg.write_text(config_text if config_text is not None else config_yaml(plan))
    ledger.write_text(ledger_text if ledger_text is not None else ledger_csv(plan, window))
    db.unlink(missing_ok=True)
    common = ("--db", str(db), "--config", str(cfg))
    cli("jobs", "import", str(ledger), "--format", "csv", *common, "-q")
    if plan.pods:   # the pods, as production imports them: kube-state-metrics' series in Prometheus
        cli("jobs", "sync-kubernetes", "--prometheus", prometheus_url, "--start", iso(window.report_start),
            "--end", iso(window.end + STEP), "--cluster", KUBE_CLUSTER, "--step", str(STEP), *common, "-q")
    ingest_out = cli("ingest", "--prometheus", prometheus_url, "--start", iso(window.start), "--end", iso(window.end),
                     "--step", str(STEP), *common)
    span = ("--start", iso(window.report_start), "--end", iso(window.report_end))
    reports: dict[str, dict[str, Any]] = {}
    files: list[Path] = []
    projects = sorted({line.split(",")[1] for line in ledger.read_text().splitlines()[1:] if line}
                      | {j.project for j in plan.pods if j.project})
    for name in [*projects, None]:
        stem = work / "reports" / (name or "all-projects")
        stem.parent.mkdir(exist_ok=True)
        for fmt in formats:
            out = stem.with_suffix("." + fmt)
            cli("report", *(("--project", name) if name else ()), *span, "--format", fmt, "--out", str(out), *common,
                "-q")
            files.append(out)
        if "json" in formats:
            reports[name or ""] = json.loads(stem.with_suffix(".json").read_text())
    with duckdb.connect(str(db), read_only=True, config=duckdb_config()) as con:
        samples, series = con.execute("SELECT count(*), count(DISTINCT series_id) FROM samples").fetchall()[0]
    fleet = reports.pop("", {})
    return Outcome(db, reports, fleet, files, int(samples), int(series), ingest_out, time.monotonic() - t0)
