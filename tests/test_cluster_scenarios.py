"""What a real cluster does to the numbers, end to end: histories written by the exporter's own code (and as
dcgm-exporter labels its counter), backfilled into a real Prometheus, then `wattprint ingest`, `jobs import`,
`intensity import` and `report` as a user runs them. Each scenario is one of the defects an independent tester
found; every truth is computed here from the scenario's own watts and seconds, never read back from wattprint.

One Prometheus holds every scenario; each test ingests its own with `--match scenario=<name>`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.cluster_sim import (
    BOOT,
    T0,
    Exporter,
    Node,
    Run,
    Timeline,
    dcgm_samples,
    iso,
    ledger_csv,
)
from tests.conftest import REPO
from tests.promstack import start_prometheus_with_history

H = 3600.0
START, END = T0 - H, T0 + 4 * H            # every scenario's ingest window: Feb 29 23:00 .. Mar 1 04:00 UTC
WINDOW_S = END - START
TARGET = {"instance": "node:9835", "job": "wattprint"}
INTENSITY_G = 100.0                        # g/kWh, every hour of the zone the scenarios' clusters are in
TYPES = {"wattprint_gpu_energy_joules_total": "counter", "wattprint_gpu_idle_energy_joules_total": "counter",
         "wattprint_job_energy_joules_total": "counter", "wattprint_job_gpu_seconds_total": "counter"}


def _exporter_run(node: Node, cluster: str, scenario: str, tl: Timeline, start: float, end: float,
                  **kw: Any) -> Exporter:
    """An exporter that has run since the driver loaded (days of energy in its totals), scraped over (start, end]."""
    ex = Exporter(node, cluster, **kw)
    Timeline.warm_up(ex, BOOT, start)
    tl.run(ex, start, end, {**TARGET, "scenario": scenario})
    return ex


# -- the scenarios ----------------------------------------------------------------------------------------------

S1 = Node("n1", runs=[Run("A", 0, T0 + 600, T0 + 2400, 400.0), Run("B", 1, T0 + 2430, T0 + 4000, 300.0)])
S1_LAST_SAVE = T0 + 2340            # state every 120 s since the warm-up's last poll at START - 900


def scenario_stepback(tmp: Path) -> list:
    """Defect 1: an exporter with --state-file and a 120 s state interval, killed uncleanly at 00:40:30, back at
    00:41:30 from the state saved at 00:39:00. Job A (GPU 0) ended at 00:40 after its last save: its counter comes
    back 24 kJ below its last scraped value, and that energy is booked again to idle. GPU 1's idle counter comes back
    below its last scraped value because job B (started during the downtime) takes the downtime's energy."""
    tl = Timeline()
    state = tmp / "s1.state"
    ex = Exporter(S1, "s1", state_file=state, state_interval=120.0)
    Timeline.warm_up(ex, BOOT, START - 900)
    tl.run(ex, START - 900, T0 + 2430, {**TARGET, "scenario": "s1"})      # killed after the 00:40:30 poll
    ex2 = Exporter(S1, "s1", state_file=state, state_interval=120.0)
    tl.run(ex2, T0 + 2490, END, {**TARGET, "scenario": "s1"})
    return tl.samples


S2 = Node("n2", gpus=1, runs=[Run("C", 0, T0 + 1800, T0 + 7200, 500.0)])
S2_WATTPRINT_FROM = T0 + H


def scenario_two_sources(tmp: Path) -> list:
    """Defect 2: dcgm-exporter (with its HPC job mapping) scraped all along; from 01:00 a wattprint exporter on the
    dcgm backend reports the same GPU (same UUID) beside it, as helm/wattprint/ci/slurm-mapping-dir-values.yaml
    deploys it."""
    tl = Timeline()
    ex = Exporter(S2, "s2")
    tl.run(ex, S2_WATTPRINT_FROM, END, {**TARGET, "scenario": "s2"})     # a fresh exporter: no warm-up
    dcgm = dcgm_samples(S2, START - 900, END, {"scenario": "s2", "cluster": "s2", "instance": "n2:9400",
                                               "job": "dcgm-exporter"},
                        hpc_job=lambda g, t: next((j for j in S2.jobs_at(g, t)), ""))
    return tl.samples + dcgm


S3 = Node("n3", runs=[Run("D", 0, T0 + 600, T0 + 1200, 400.0), Run("E", 1, T0 + 1800, T0 + 1801, 500.0),
                      Run("G", 1, T0 - 1800, T0, 300.0)])


def scenario_gpu_time(tmp: Path) -> list:
    """Defect 3: a 10-minute job (D), a 1-second job (E), and a job (G) that ends at midnight, the month's end. The
    exporter keeps each finished job's series for 300 s."""
    tl = Timeline()
    _exporter_run(S3, "s3", "s3", tl, START - 900, END)
    return tl.samples


S4 = Node("n4", runs=[Run("H", 0, T0 + 600, T0 + 9000, 400.0)])
S4_OUTAGE = (T0 + H, T0 + 1.5 * H)
S4_KILL, S4_BACK = T0 + 4500, T0 + 4560


def scenario_restart_in_outage(tmp: Path) -> list:
    """Defect 4: Prometheus does not scrape the node for 30 minutes (01:00-01:30) and the exporter, which has no
    state file, restarts inside that outage (01:15, back at 01:16): its counters start again from 0."""
    tl = Timeline(outages=[S4_OUTAGE])
    _exporter_run(S4, "s4", "s4", tl, START - 900, S4_KILL)
    ex2 = Exporter(S4, "s4")
    tl.run(ex2, S4_BACK, END, {**TARGET, "scenario": "s4"})
    return tl.samples


S5 = Node("n5", runs=[Run("J", 0, T0 + 600, T0 + 4200, 400.0), Run("K", 1, T0 + 3700, T0 + 4300, 500.0)])
S5_OUTAGE = (T0 + H, T0 + 4800)


def scenario_expired_in_outage(tmp: Path) -> list:
    """Defect 5: Prometheus misses 20 minutes (01:00-01:20), longer than the exporter's 300 s job retention. Job J
    (GPU 0) ends inside the outage, job K (GPU 1) runs entirely inside it: the last of J's energy and all of K's is
    in no sample, though the GPUs' counters hold it."""
    tl = Timeline(outages=[S5_OUTAGE])
    _exporter_run(S5, "s5", "s5", tl, START - 900, END)
    return tl.samples


S6 = Node("n6", gpus=8, runs=[Run("L", g, T0 + 1.5 * H, T0 + 3.5 * H, 600.0) for g in range(8)],
          replaced={3: (T0 + H, "GPU-n6-3-new")})


def scenario_replaced_gpu(tmp: Path) -> list:
    """Defect 6: dcgm-exporter only (no job label), 8 GPUs; GPU 3 is swapped for a new board (new UUID) at 01:00.
    Job L then holds all 8 GPUs from 01:30 to 03:30 (the ledger says 8 GPUs on the node)."""
    return dcgm_samples(S6, START - 900, END, {"scenario": "s6", "cluster": "s6", "instance": "n6:9400",
                                               "job": "dcgm-exporter"})


S7A = Node("gpu07", runs=[Run("M", 0, T0 + 600, T0 + 2400, 450.0)], uuid_prefix="s7a")
S7B = Node("gpu01", runs=[Run("N", g, T0 + H, T0 + 3 * H, 350.0) for g in range(2)], uuid_prefix="s7b")


def scenario_node_identity(tmp: Path) -> list:
    """Defect 7: (a) an exporter whose --hostname is GPU07.cluster.example.org and which adds no cluster label: the
    config's `nodes: ["gpu*"]` must place it; (b) dcgm-exporter reporting node gpu01 as `gpu01.cluster.local`, where
    sacct (the ledger) says `gpu01`."""
    tl = Timeline()
    ex = Exporter(S7A, None, hostname="GPU07.cluster.example.org")
    Timeline.warm_up(ex, BOOT, START - 900)
    tl.run(ex, START - 900, END, {**TARGET, "scenario": "s7"})
    dcgm = dcgm_samples(S7B, START - 900, END, {"scenario": "s7", "instance": "gpu01:9400", "job": "dcgm-exporter"},
                        hostname="gpu01.cluster.local")
    return tl.samples + dcgm


S10 = Node("n10", runs=[Run("P", 1, T0 + 600, T0 + 9000, 300.0)], down={1: [(T0 + H, T0 + 1.5 * H)]})


def scenario_one_gpu_down(tmp: Path) -> list:
    """Defect 10: GPU 1 stops answering for 30 minutes (01:00-01:30); the exporter drops its series meanwhile (its
    energy, idle and job counters) and books the outage's energy when it answers again."""
    tl = Timeline()
    _exporter_run(S10, "s10", "s10", tl, START - 900, END)
    return tl.samples


SCENARIOS = (scenario_stepback, scenario_two_sources, scenario_gpu_time, scenario_restart_in_outage,
             scenario_expired_in_outage, scenario_replaced_gpu, scenario_node_identity, scenario_one_gpu_down)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("scenarios")
    samples = [s for build in SCENARIOS for s in build(tmp)]
    store = start_prometheus_with_history(tmp / "prometheus", samples, types=TYPES)
    yield store.base_url
    store.stop()


# -- running wattprint as a user does ---------------------------------------------------------------------------

def wattprint(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, f"wattprint {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done


def config(tmp: Path, text: str) -> Path:
    path = tmp / "wattprint.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def setup(tmp: Path, url: str, scenario: str, ledger: list[tuple], cfg: str = "") -> tuple[Path, list[str]]:
    """ingest + jobs import + intensity import of one scenario into a fresh database; (db, --db/--config args)."""
    db = tmp / f"{scenario}.duckdb"
    cfg_path = config(tmp, cfg or f"clusters:\n  {scenario}:\n    zone: FR\n    pue: 1.0\n")
    common = ["--db", str(db), "--config", str(cfg_path)]
    wattprint("ingest", "--prometheus", url, "--start", iso(START), "--end", iso(END), "--match",
              f"scenario={scenario}", *common)
    if ledger:
        wattprint("jobs", "import", "--format", "csv", str(ledger_csv(tmp / "jobs.csv", ledger)), *common)
    rows = ["timestamp,zone,intensity_g_per_kwh"] + [f"{iso(START + h * H)},FR,{INTENSITY_G}" for h in range(5)]
    (tmp / "intensity.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    wattprint("intensity", "import", "--format", "csv", str(tmp / "intensity.csv"), *common)
    return db, common


def q(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def job_j(db: Path) -> dict[str | None, float]:
    return dict(q(db, "SELECT job_id, sum(energy_j) FROM fct_job_gpu_hour GROUP BY 1"))


def job_s(db: Path) -> dict[str | None, float]:
    return dict(q(db, "SELECT job_id, sum(gpu_seconds) FROM fct_job_gpu_hour WHERE job_id IS NOT NULL GROUP BY 1"))


def idle_j(db: Path, hostname: str, gpu: str) -> float:
    return q(db, "SELECT coalesce(sum(energy_j), 0) FROM fct_job_gpu_hour WHERE job_id IS NULL AND hostname = ?"
                 " AND gpu = ?", [hostname, gpu])[0][0]


def report(common: list[str], *args: str) -> dict[str, Any]:
    return json.loads(wattprint("report", "--format", "json", *args, *common).stdout)


def assert_reconciled(db: Path) -> None:
    """The reconciliation: every GPU-hour's priced energy equals its hardware counter's."""
    off = q(db, "SELECT hour_ts, hostname, gpu, counter_j, priced_j, cause FROM fct_gpu_hour WHERE cause IS NOT NULL")
    assert off == [], off
    assert q(db, "SELECT count(*) FROM fct_gpu_hour WHERE counter_j IS NOT NULL")[0][0] > 0


def close(got: float, want: float, rel: float = 0.005) -> bool:
    return abs(got - want) <= rel * abs(want)


def row(job: str, cluster: str, node: str, start: float, end: float, gpus: int | None = 1) -> tuple:
    return (job, f"p-{cluster}", "pretraining", cluster, start, end, node, gpus)


# -- the tests --------------------------------------------------------------------------------------------------

def test_a_counter_that_steps_back_is_not_a_restart(prometheus: str, tmp_path: Path) -> None:
    db, common = setup(tmp_path, prometheus, "s1", [row("A", "s1", "n1", T0 + 600, T0 + 2400),
                                                    row("B", "s1", "n1", T0 + 2430, T0 + 4000)])
    got = job_j(db)
    assert close(got["A"], 400.0 * 1800), got          # not 720 kJ + 696 kJ counted again
    assert close(got["B"], 300.0 * 1570), got
    assert close(idle_j(db, "n1", "0"), 70.0 * (WINDOW_S - 1800))
    assert close(idle_j(db, "n1", "1"), 70.0 * (WINDOW_S - 1570))       # not three days of idle in one minute
    held = job_s(db)
    assert held["A"] == pytest.approx(1800.0)
    # B started inside the downtime; the restarted exporter books the downtime's energy to it, not time
    assert 1570.0 - (T0 + 2490 - S1_LAST_SAVE) <= held["B"] <= 1570.0
    steps = q(db, "SELECT count(DISTINCT stream_id) FROM energy_intervals WHERE quality = 'counter_stepback'")[0][0]
    assert steps >= 2                                   # A's energy and held time, GPU 1's idle
    assert_reconciled(db)
    r = report(common, "--start", iso(T0), "--end", iso(T0 + 4 * H))
    assert any("stepped back" in w for w in r["data_quality"]["warnings"]), r["data_quality"]["warnings"]


def test_one_gpu_is_priced_from_one_source(prometheus: str, tmp_path: Path) -> None:
    db, common = setup(tmp_path, prometheus, "s2", [row("C", "s2", "n2", T0 + 1800, T0 + 7200)])
    truth = S2.joules(0, START, END)
    fleet = q(db, "SELECT sum(energy_j) FROM fct_job_gpu_hour")[0][0]
    assert close(fleet, truth), (fleet, truth)         # not the dcgm and the wattprint energy of the same GPUs
    assert close(job_j(db)["C"], 500.0 * 5400)
    sources = dict(q(db, "SELECT hour_ts, string_agg(DISTINCT sources, '/') FROM fct_gpu_hour GROUP BY 1"))
    assert {s for t, s in sources.items() if t.timestamp() < S2_WATTPRINT_FROM} == {"dcgm"}
    assert {s for t, s in sources.items() if t.timestamp() >= S2_WATTPRINT_FROM + H} == {"wattprint"}
    unpriced = q(db, "SELECT sum(unpriced_j) FROM fct_gpu_hour")[0][0]
    assert close(unpriced, S2.joules(0, S2_WATTPRINT_FROM, END), 0.01)
    assert_reconciled(db)
    r = report(common, "--start", iso(T0), "--end", iso(T0 + 4 * H))
    assert any("two sources" in w for w in r["data_quality"]["warnings"]), r["data_quality"]["warnings"]
    # the dcgm source can be switched off: then only the wattprint exporter's energy (from 01:00) is there
    (tmp_path / "off").mkdir()
    db2, _ = setup(tmp_path / "off", prometheus, "s2", [],
                   "clusters:\n  s2:\n    zone: FR\ningest:\n  metrics:\n    dcgm:\n      enabled: false\n")
    fleet2 = q(db2, "SELECT sum(energy_j) FROM fct_job_gpu_hour")[0][0]
    assert close(fleet2, S2.joules(0, S2_WATTPRINT_FROM, END))
    assert q(db2, "SELECT count(*) FROM series WHERE source = 'dcgm'")[0][0] == 0


def test_gpu_time_is_the_time_the_job_held_the_gpu(prometheus: str, tmp_path: Path) -> None:
    db, common = setup(tmp_path, prometheus, "s3", [row("D", "s3", "n3", T0 + 600, T0 + 1200),
                                                    row("E", "s3", "n3", T0 + 1800, T0 + 1801),
                                                    row("G", "s3", "n3", T0 - 1800, T0)])
    held = job_s(db)
    assert held["D"] == pytest.approx(600.0)
    assert held["E"] == pytest.approx(1.0)
    assert held["G"] == pytest.approx(1800.0)
    assert q(db, "SELECT count(*) FROM fct_job_gpu_hour WHERE job_id = 'G' AND hour_ts >= ?", [iso(T0)])[0][0] == 0
    # idle energy of 00:00-01:00 is shared by GPU-seconds: D held 600 s, E 1 s
    idle_h = 70.0 * (2 * H - 600 - 1)
    r = report(common, "--start", iso(T0), "--end", iso(T0 + H))
    top = {j["job_id"]: j for j in r["top_jobs"]}
    assert set(top) == {"D", "E"}                      # G ended at midnight: nothing of it in March
    for job, own, secs in (("D", 400.0 * 600, 600.0), ("E", 500.0, 1.0)):
        want_kg = (own + idle_h * secs / 601.0) / 3.6e6 * INTENSITY_G / 1000.0
        assert close(top[job]["emissions_kg"], want_kg), (job, top[job], want_kg)
        assert top[job]["gpu_hours"] == pytest.approx(secs / H)
    assert_reconciled(db)


def test_gpu_time_without_the_held_time_counter(prometheus: str, tmp_path: Path) -> None:
    """An exporter older than wattprint_job_gpu_seconds_total: GPU time is the time the job's energy rose, to the
    ingest step, never the 300 s the exporter keeps a finished job's series."""
    cfg = ("clusters:\n  s3:\n    zone: FR\ningest:\n  metrics:\n    wattprint:\n"
           "      job_gpu_seconds: wattprint_no_such_metric_total\n")
    db, _ = setup(tmp_path, prometheus, "s3", [], cfg)
    held = job_s(db)
    assert 600.0 <= held["D"] <= 660.0
    assert 1.0 <= held["E"] <= 60.0


def test_an_outage_that_ends_in_a_restart_is_a_gap(prometheus: str, tmp_path: Path) -> None:
    db, common = setup(tmp_path, prometheus, "s4", [row("H", "s4", "n4", T0 + 600, T0 + 9000)])
    # the energy the new process counted from its first poll (01:16:01) is there; what ran between the last scrape
    # (01:00) and that poll is in no counter
    lost_s = S4_BACK + 1 - S4_OUTAGE[0]
    assert close(job_j(db)["H"], 400.0 * (8400 - lost_s))
    r = report(common, "--start", iso(T0), "--end", iso(T0 + 4 * H))
    gaps = r["data_quality"]["gaps"]
    # Prometheus repeats a series' last sample for 5 minutes: the gap runs from 01:05 to 01:30, on GPU 0 (the report
    # counts the gaps of the GPUs its jobs ran on; GPU 1 ran none)
    assert gaps["count"] == 1 and gaps["hours"] == pytest.approx((1800 - 300) / H)
    assert gaps["restarts"] == 1
    assert r["data_quality"]["energy"]["counter"] < 1.0
    assert any("restart" in w for w in r["data_quality"]["warnings"]), r["data_quality"]["warnings"]
    assert_reconciled(db)


def test_energy_of_jobs_whose_series_expired_in_an_outage_is_attributed(prometheus: str, tmp_path: Path) -> None:
    db, common = setup(tmp_path, prometheus, "s5", [row("J", "s5", "n5", T0 + 600, T0 + 4200),
                                                    row("K", "s5", "n5", T0 + 3700, T0 + 4300)])
    got = job_j(db)
    assert close(got["J"], 400.0 * 3600), got
    assert close(got["K"], 500.0 * 600), got
    assert close(idle_j(db, "n5", "0"), 70.0 * (WINDOW_S - 3600))
    assert close(idle_j(db, "n5", "1"), 70.0 * (WINDOW_S - 600))
    held = job_s(db)
    assert close(held["J"], 3600.0) and close(held["K"], 600.0), held
    residual = dict(q(db, "SELECT job_id, sum(energy_j) FROM fct_job_gpu_hour WHERE attribution = 'residual_share'"
                          " GROUP BY 1"))
    assert set(residual) == {"J", "K"}
    assert_reconciled(db)
    r = report(common, "--start", iso(T0), "--end", iso(T0 + 4 * H))
    assert any("no job or idle counter" in w for w in r["data_quality"]["warnings"]), r["data_quality"]["warnings"]


def test_node_share_counts_the_gpus_present_in_the_hour(prometheus: str, tmp_path: Path) -> None:
    db, _ = setup(tmp_path, prometheus, "s6", [row("L", "s6", "n6", T0 + 1.5 * H, T0 + 3.5 * H, 8)])
    assert close(job_j(db)["L"], 8 * 600.0 * 2 * H)
    assert job_s(db)["L"] == pytest.approx(8 * 2 * H)
    assert_reconciled(db)


def test_one_node_identity_rule(prometheus: str, tmp_path: Path) -> None:
    cfg = ("default_cluster: other\nclusters:\n  s7:\n    zone: FR\n    pue: 1.3\n    nodes: [\"gpu*\"]\n"
           "  other:\n    zone: DE\n")
    db, _ = setup(tmp_path, prometheus, "s7", [row("M", "s7", "gpu07", T0 + 600, T0 + 2400),
                                               row("N", "s7", "gpu01", T0 + H, T0 + 3 * H, 2)], cfg)
    rows = q(db, "SELECT DISTINCT cluster, zone, pue FROM fct_job_gpu_hour")
    assert rows == [("s7", "FR", 1.3)]
    got = job_j(db)
    assert close(got["M"], 450.0 * 1800) and close(got["N"], 2 * 350.0 * 2 * H), got
    assert q(db, "SELECT bool_and(in_ledger) FROM fct_job_gpu_hour WHERE job_id IS NOT NULL")[0][0]
    (emitted,) = q(db, "SELECT sum(emissions_g) FROM fct_job_gpu_hour WHERE job_id = 'M'")[0]
    assert close(emitted, 450.0 * 1800 / 3.6e6 * 1.3 * INTENSITY_G)
    assert_reconciled(db)


def test_gaps_are_counted_per_gpu(prometheus: str, tmp_path: Path) -> None:
    db, common = setup(tmp_path, prometheus, "s10", [row("P", "s10", "n10", T0 + 600, T0 + 9000)])
    r = report(common, "--start", iso(T0), "--end", iso(T0 + 4 * H))
    gaps = r["data_quality"]["gaps"]
    # GPU 1's series are missing from 01:00:15 to 01:30:00; Prometheus repeats the 01:00 sample for 5 minutes and the
    # ingest step (60 s) next sees it at 01:31: one gap of 01:05-01:31 on one GPU, not one per series
    assert gaps["count"] == 1 and gaps["hours"] == pytest.approx(1560 / H)
    assert gaps["restarts"] == 0
    assert close(job_j(db)["P"], 300.0 * 8400)         # the exporter booked the outage when GPU 1 answered again
    assert_reconciled(db)
