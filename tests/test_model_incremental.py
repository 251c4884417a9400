"""Incremental builds equal full ones, bit for bit.

A job or intensity import rebuilds only the hours it can change (wattprint/pipeline/dirty.py, model.rebuild_hours).
Here random sequences of imports, re-imports (a job moved, given to another project, left running, put on another
node) and config changes run through the verbs on one database; after each step every derived table is compared,
row by row and bit by bit, with a build from scratch of a copy of the same inputs.

The fleet exercises every attribution the results have: wattprint's split counters on node n0, whose job counter
for J0 stops while the GPU goes on (its energy is then a residual shared among the ledger's jobs), dcgm counters on
n1 whose series name a job part of the time (gpu_label, else node_share or unallocated), power gauges on n2; the
intensity has holes, so nearest-hour, monthly-mean and annual fallbacks all price something.
"""

from __future__ import annotations

import json
import random
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from tests.modelkit import T0, cover
from wattprint.pipeline import db
from wattprint.pipeline.model import DERIVED, build
from wattprint.pipeline.settings import load_settings
from wattprint.pipeline.verbs import IntensityImportRequest, JobsImportRequest, intensity_import, jobs_import

MINUTES = 36 * 60
JOB_STOPS = 20 * 60            # J0's counter on n0 is last scraped here; the GPU goes on


def _series(con, i: int, source: str, kind: str, labels: dict[str, str], values_sql: str, share: float,
            until: int = MINUTES) -> None:  # type: ignore[no-untyped-def]
    con.execute(
        "INSERT INTO series (series_id, source, kind, query, fingerprint, cluster, hostname, gpu, uuid, job_id,"
        " labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [i, source, kind, "q" + kind, str(i), labels.get("cluster"), labels["hostname"], labels["gpu"],
         labels["uuid"], labels.get("job_id"), json.dumps(labels)])
    con.execute(
        f"INSERT INTO samples SELECT ?, ?::TIMESTAMPTZ + to_minutes(m), {values_sql} FROM"
        " (SELECT m, ? * 60.0 * (250 + 400 * ((hash(?, m) % 1000) / 1000.0)) AS w FROM range(?) t(m))",
        [i, T0, share, labels["uuid"], until])


def _fleet(path: Path) -> None:
    con = db.connect(path)
    i = 0
    for g in range(4):
        base = {"cluster": "c1", "hostname": "n0", "gpu": str(g), "uuid": f"GPU-n0-{g}"}
        for kind, share, extra, until in (("gpu_energy", 1.0, {}, MINUTES), ("idle_energy", 0.3, {}, MINUTES),
                                         ("job_energy", 0.7, {"job_id": "J0"}, JOB_STOPS if g < 2 else MINUTES)):
            i += 1
            _series(con, i, "wattprint", kind, {**base, **extra}, "sum(w) OVER (ORDER BY m)", share, until)
    for g in range(4):
        base = {"cluster": "c1", "hostname": "n1", "gpu": str(g), "uuid": f"GPU-n1-{g}"}
        i += 1
        if g == 0:   # the series names job J1 for its first 12 hours, then another series (no label) goes on
            _series(con, i, "dcgm", "gpu_energy", {**base, "job_id": "J1"}, "sum(w) OVER (ORDER BY m)", 1.0, 720)
            i += 1
            con.execute("CREATE TEMP TABLE tail AS SELECT ts, value FROM samples WHERE series_id = ?", [i - 1])
            _series(con, i, "dcgm", "gpu_energy", base, "sum(w) OVER (ORDER BY m)", 1.0)
            con.execute("DELETE FROM samples WHERE series_id = ? AND ts < ?::TIMESTAMPTZ + INTERVAL 720 MINUTE",
                        [i, T0])
        else:
            _series(con, i, "dcgm", "gpu_energy", base, "sum(w) OVER (ORDER BY m)", 1.0)
    for g in range(4):
        i += 1
        _series(con, i, "power", "gpu_power", {"hostname": "n2", "gpu": str(g), "uuid": f"GPU-n2-{g}"},
                "w / 60.0", 1.0)
    for g in range(4):   # (series ids after the others': tests/test_retention.py edits series 1, 4 and 5)
        base = {"cluster": "c1", "hostname": "n0", "gpu": str(g), "uuid": f"GPU-n0-{g}", "job_id": "J0"}
        # J0's held-but-idle energy (a part of its energy) and time, and its equal-share time: reported, not priced
        for kind, values_sql in (("job_held_idle_energy", "sum(CASE WHEN w < 0.5 * 60.0 * 450 THEN w ELSE 0 END)"
                                                          " OVER (ORDER BY m)"),
                                 ("job_held_idle_seconds", "sum(CASE WHEN w < 0.5 * 60.0 * 450 THEN 60 ELSE 0 END)"
                                                           " OVER (ORDER BY m)"),
                                 ("job_equal_share_seconds", "60.0 * m")):
            i += 1
            _series(con, i, "wattprint", kind, base, values_sql, 0.7, JOB_STOPS if g < 2 else MINUTES)
    for kind in ("gpu_energy", "idle_energy", "job_energy", "gpu_power", "job_held_idle_energy",
                 "job_held_idle_seconds", "job_equal_share_seconds"):
        cover(con, kind, 0, MINUTES)
    con.close()


def _config(path: Path, pue: float) -> str:
    path.write_text(f"clusters:\n  c1:\n    zone: FR\n    pue: {pue}\n    nodes: [\"n*\"]\n")
    return str(path)


def _tables(path: Path) -> dict[str, list[tuple]]:
    con = db.connect(path, read_only=True)
    try:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in DERIVED}
    finally:
        con.close()


def _from_scratch(path: Path, tmp: Path, config: str) -> dict[str, list[tuple]]:
    copy = tmp / "scratch.duckdb"
    shutil.copy(path, copy)
    con = db.connect(copy)
    con.execute("DELETE FROM build_info")
    for t in DERIVED:
        con.execute(f"DROP TABLE IF EXISTS {t}")
    build(con, load_settings(config).build_settings())
    con.close()
    out = _tables(copy)
    copy.unlink()
    return out


def _iso(minute: int) -> str:
    return (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jobs_csv(rnd: random.Random, path: Path, n: int, j0: bool = False) -> Path:
    """n random jobs; j0: and J0 on n0 all along (so the residual its stopped counter leaves is shared to it)."""
    lines = ["job_id,project,phase,cluster,user,start,end,nodes,gpus"]
    if j0:
        lines.append(f"J0,p0,pretraining,c1,u,{_iso(-60)},{_iso(MINUTES + 60)},n0,4")
    for j in rnd.sample(range(1 if j0 else 0, 8), n):    # one row per job in a file; another file may move it
        start = rnd.randint(-300, MINUTES)
        end = "" if rnd.random() < 0.15 else _iso(start + rnd.randint(20, 900))
        lines.append(f"J{j},p{rnd.randint(0, 2)},{rnd.choice(['pretraining', 'finetuning'])},c1,u,"
                     f"{_iso(start)},{end},{rnd.choice(['n0', 'n1', 'n2'])},{rnd.choice([1, 2, 4])}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _intensity_csv(rnd: random.Random, path: Path) -> Path:
    first = rnd.randint(-6, 40)
    hours = [h for h in range(first, first + rnd.randint(1, 20)) if rnd.random() > 0.2]
    lines = ["timestamp,zone,intensity_g_per_kwh"] + [f"{_iso(h * 60)},FR,{rnd.uniform(10, 90):.3f}" for h in hours]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inc") / "fleet.duckdb"
    _fleet(path)
    return path


@pytest.mark.parametrize("seed", range(4))
def test_random_imports_rebuild_exactly_what_a_full_build_makes(fleet: Path, tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    path = tmp_path / "w.duckdb"
    shutil.copy(fleet, path)
    config = _config(tmp_path / "wattprint.yaml", 1.2)
    con = db.connect(path)
    build(con, load_settings(config).build_settings())
    con.close()
    steps = []
    for step in range(7):
        what = rnd.choice(["jobs", "jobs", "intensity", "intensity", "config"]) if step else "jobs"
        settings = load_settings(config)
        if what == "jobs":
            ledger = _jobs_csv(rnd, tmp_path / f"jobs{step}.csv", rnd.randint(1, 4), j0=step == 0)
            assert jobs_import(JobsImportRequest(str(ledger), "csv", db=str(path), quiet=True), settings) == 0
        elif what == "intensity":
            points = _intensity_csv(rnd, tmp_path / f"intensity{step}.csv")
            assert intensity_import(IntensityImportRequest(str(points), "csv", db=str(path), quiet=True),
                                    settings) == 0
        else:      # a new PUE: the next import must rebuild everything
            config = _config(tmp_path / "wattprint.yaml", rnd.choice([1.1, 1.3, 1.5]))
            continue
        steps.append(what)
        got, want = _tables(path), _from_scratch(path, tmp_path, config)
        for t in DERIVED:
            assert len(got[t]) == len(want[t]), f"seed {seed} step {step} ({steps}): {t} row count"
            assert got[t] == want[t], f"seed {seed} step {step} ({steps}): {t} differs from a full build"


def test_the_fleet_prices_every_attribution(fleet: Path, tmp_path: Path) -> None:
    """The scenario above is only a test if each attribution and fallback is in it."""
    rnd = random.Random(1)
    path = tmp_path / "w.duckdb"
    shutil.copy(fleet, path)
    config = _config(tmp_path / "wattprint.yaml", 1.2)
    settings = load_settings(config)
    jobs_import(JobsImportRequest(str(_jobs_csv(rnd, tmp_path / "j.csv", 7, j0=True)), "csv", db=str(path), quiet=True),
                settings)
    intensity_import(IntensityImportRequest(str(_intensity_csv(rnd, tmp_path / "i.csv")), "csv", db=str(path),
                                            quiet=True), settings)
    con = db.connect(path, read_only=True)
    attributions = {r[0] for r in con.execute("SELECT DISTINCT attribution FROM fct_job_gpu_hour").fetchall()}
    qualities = {r[0] for r in con.execute("SELECT DISTINCT intensity_quality FROM fct_job_gpu_hour").fetchall()}
    held = con.execute("SELECT count(*), count(project), sum(equal_share_seconds) FROM fct_job_gpu_held_idle_hour"
                       ).fetchall()[0]
    con.close()
    assert held[0] > 0 and held[1] > 0 and held[2] > 0      # J0's held-idle rows, with its project once imported
    assert {"exporter", "idle", "residual_share", "gpu_label", "node_share", "unallocated"} <= attributions
    assert {"hourly", "nearest_hour"} <= qualities


def test_a_job_moved_twice_updates_every_hour_it_was_measured_in(fleet: Path, tmp_path: Path) -> None:
    """J0 (wattprint's job counter on n0) and J1 (dcgm's job label on n1) are measured in hours their ledger spans
    do not cover once they are moved: those rows carry the job's project too, and must follow each re-import."""
    path = tmp_path / "w.duckdb"
    shutil.copy(fleet, path)
    config = _config(tmp_path / "wattprint.yaml", 1.2)
    settings = load_settings(config)
    head = "job_id,project,phase,cluster,user,start,end,nodes,gpus\n"
    versions = [(f"J0,p0,pretraining,c1,u,{_iso(-60)},{_iso(MINUTES + 60)},n0,4\n"
                 f"J1,p0,pretraining,c1,u,{_iso(0)},{_iso(700)},n1,1\n"),
                f"J0,p1,finetuning,c1,u,{_iso(1500)},{_iso(1600)},n0,4\n",
                f"J1,p1,finetuning,c1,u,{_iso(1000)},{_iso(1100)},n1,1\n",
                f"J0,p2,pretraining,c1,u,{_iso(1700)},{_iso(1800)},n2,1\n",
                f"J1,p2,pretraining,c1,u,{_iso(1900)},{_iso(2000)},n2,1\n"]
    for n, rows in enumerate(versions):
        ledger = tmp_path / f"jobs{n}.csv"
        ledger.write_text(head + rows)
        assert jobs_import(JobsImportRequest(str(ledger), "csv", db=str(path), quiet=True), settings) == 0
        got, want = _tables(path), _from_scratch(path, tmp_path, config)
        for t in DERIVED:
            assert got[t] == want[t], f"version {n}: {t} differs from a full build"
    con = db.connect(path, read_only=True)
    projects = con.execute("SELECT DISTINCT job_id, project FROM fct_job_gpu_hour WHERE job_id IN ('J0', 'J1')"
                           " ORDER BY ALL").fetchall()
    con.close()
    assert projects == [("J0", "p2"), ("J1", "p2")]


def test_a_build_month_by_month_equals_one_build_over_every_hour(fleet: Path, tmp_path: Path) -> None:
    """A full build makes the results a UTC month at a time (bounded memory); here the fleet's 36 hours are moved
    to straddle February 29 -> March 1, and the tables must equal one build over every hour, row for row and in
    the same stored order."""
    from wattprint.pipeline.model import MODELS, load_reference, run_models

    path = tmp_path / "w.duckdb"
    shutil.copy(fleet, path)
    con = db.connect(path)
    con.execute("UPDATE samples SET ts = ts - INTERVAL 12 HOUR")
    con.execute("UPDATE ingest_coverage SET start_ts = start_ts - INTERVAL 12 HOUR, end_ts = end_ts - INTERVAL 12 HOUR")
    con.close()
    config = _config(tmp_path / "wattprint.yaml", 1.2)
    rnd = random.Random(5)
    settings = load_settings(config)
    jobs_import(JobsImportRequest(str(_jobs_csv(rnd, tmp_path / "j.csv", 7, j0=True)), "csv", db=str(path),
                                  quiet=True), settings)       # the first build: a full one, month by month
    by_month = {t: db_rows(path, t) for t in DERIVED}
    con = db.connect(path)
    s = settings.build_settings()
    load_reference(con, s)
    run_models(con, MODELS, s.params())                        # one build over every hour
    con.close()
    whole = {t: db_rows(path, t) for t in DERIVED}
    assert {r[0].strftime("%Y-%m") for r in whole["fct_job_gpu_hour"]} == {"2024-02", "2024-03"}
    for t in DERIVED:
        if t.startswith("fct_"):
            assert by_month[t] == whole[t], f"{t}: not the same rows in the same order"
        else:
            assert sorted(by_month[t], key=repr) == sorted(whole[t], key=repr), t


def db_rows(path: Path, table: str) -> list[tuple]:
    con = db.connect(path, read_only=True)
    try:
        return con.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        con.close()
