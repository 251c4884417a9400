"""Whole-node power from the BMC, the `node` accounting layer: a real Prometheus holds the BMC series (ipmi_exporter's
gauge and the exporter's node energy counter) beside the exporter's GPU and RAPL series, the pipeline ingests them
into a real DuckDB, and every figure below is worked out by hand from the scenario's definitions.

The scenario (cluster c1, PUE 1.5, 60 s steps, 2024-03-01 00:00-02:00 UTC, hours h0 and h1):

* gpu01, the wattprint exporter with its BMC collector (wattprint_node_energy_joules_total{source="redfish"}): GPU 0
  runs job A at 600 W until 01:00 then idles at 60 W, GPU 1 runs job B at 300 W all along; RAPL package 200 W
  (A 40 W in h0, B 20 W, the rest host idle); the BMC reads 1500 W in h0 and 1000 W in h1.
    h0: node 5.4 MJ = GPUs 3.24 + RAPL 0.72 + residual 1.44; A and B each held one of the 2 GPUs all hour:
        A 0.72 MJ, B 0.72 MJ, node idle 0.
    h1: node 3.6 MJ = GPUs 1.296 + RAPL 0.72 + residual 1.584; B held 3600 of 7200 GPU-seconds: B 0.792, idle 0.792.
* gpu02, ipmi_exporter (no label of its own: the host is the scrape's instance, gpu02:9290): GPU 0 runs job C at
  500 W, no RAPL series; the BMC reads 800 W until 01:00 (the 01:00 scrape included), then 400 W.
    h0: node 2.88 MJ = GPU 1.8 + residual 1.08, all C's.
    h1: the first interval is the trapezoid (800 + 400) / 2 W, then 59 minutes at 400 W: node 1.452 MJ, less than the
        GPU alone (1.8 MJ): residual -0.348 MJ, a deficit, flagged, attributed 0.
* cpu01, no GPU, ipmi_exporter at 450 W: RAPL package 300 W split by the exporter among job D (8 cores), job E
  (4 cores) and host idle by the node's 64 cores: D 37.5 W, E 18.75 W. No job held a GPU, so the CPU-seconds fallback:
  each hour residual = 1.62 - 1.08 = 0.54 MJ; the jobs' part is the exporter's share of RAPL to jobs, 202,500 of
  1,080,000 J: 101,250 J, split by CPU-seconds 28,800 : 14,400 -> D 67,500 J, E 33,750 J, node idle 438,750 J.
* gpu03, the exporter's BMC collector at 1000 W, two GPUs, no RAPL series: jobs F and G share GPU 0 in time (each
  holds it all along, each charged 200 W of its 400 W), GPU 1 idles at 100 W with no job. Each hour: node 3.6 MJ =
  GPUs 1.8 + residual 1.8. F and G held 3600 GPU-seconds each, 7200 on one GPU that had 3600: allocated 1800 each
  (a GPU is allocated once), 3600 of the node's 7200: F 0.45 MJ, G 0.45 MJ, node idle 0.9 MJ (GPU 1's half).
"""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from jsonschema import Draft202012Validator

from tests.conftest import REPO, free_port, loopback_server, require_tool, wait_http
from tests.promstack import start_prometheus_with_history
from wattprint.pipeline import db
from wattprint.pipeline.ingest import ingest
from wattprint.pipeline.model import build, rebuild_hours
from wattprint.pipeline.promapi import PromClient, PromConfig
from wattprint.pipeline.report.compute import build_report
from wattprint.pipeline.report.run import render
from wattprint.pipeline.report.scope import ReportOptions
from wattprint.pipeline.report.window import Window
from wattprint.pipeline.retention import compact
from wattprint.pipeline.settings import load_settings

T0 = datetime(2024, 3, 1, tzinfo=UTC)
STEPS = range(0, 121)                    # minutes after T0
PUE = 1.5
CONFIG = f"""\
clusters:
  c1: {{zone: FR, pue: {PUE}, nodes: ["gpu*", "cpu*"]}}
"""
# ipmi_exporter's exposition of the DCMI collector, as collector_dcmi.go writes it (no labels of its own)
IPMI_PAGE = """\
# HELP ipmi_dcmi_power_consumption_watts Current power consumption in Watts.
# TYPE ipmi_dcmi_power_consumption_watts gauge
ipmi_dcmi_power_consumption_watts 361
# HELP ipmi_up '1' if a scrape of the IPMI device was successful, '0' otherwise.
# TYPE ipmi_up gauge
ipmi_up{collector="dcmi"} 1
"""
TYPES = {name: "counter" for name in (
    "wattprint_gpu_energy_joules_total", "wattprint_gpu_idle_energy_joules_total", "wattprint_job_energy_joules_total",
    "wattprint_job_gpu_seconds_total", "wattprint_cpu_energy_joules_total", "wattprint_cpu_idle_energy_joules_total",
    "wattprint_job_cpu_energy_joules_total", "wattprint_job_cpu_seconds_total", "wattprint_node_energy_joules_total")}


def _ts(minute: int) -> float:
    return (T0 + timedelta(minutes=minute)).timestamp()


def _history() -> list[tuple[str, dict[str, str], float, float]]:
    out = []

    def add(metric: str, labels: dict[str, str], value_at) -> None:  # type: ignore[no-untyped-def]
        for m in STEPS:
            v = value_at(m)
            if v is not None:
                out.append((metric, labels, _ts(m), float(v)))

    exp = {"cluster": "c1", "job": "wattprint"}
    # gpu01: GPU 0 (job A at 600 W from 10 minutes before T0 to 01:00, then idle at 60 W), GPU 1 (job B at 300 W)
    g0 = {**exp, "hostname": "gpu01", "instance": "gpu01:9835", "gpu": "0", "uuid": "GPU-a0", "model": "H100"}
    g1 = {**g0, "gpu": "1", "uuid": "GPU-a1"}
    a_j = lambda m: 600.0 * 60 * (min(m, 60) + 10)                            # noqa: E731
    idle0 = lambda m: 1e6 + 60.0 * 60 * max(0, m - 60)                        # noqa: E731
    b_j = lambda m: 300.0 * 60 * (m + 60)                                     # noqa: E731
    add("wattprint_job_energy_joules_total", {**g0, "job_id": "A"}, lambda m: a_j(m) if m <= 60 else None)
    add("wattprint_job_gpu_seconds_total", {**g0, "job_id": "A"}, lambda m: 60 * (m + 10) if m <= 60 else None)
    add("wattprint_gpu_idle_energy_joules_total", g0, idle0)
    add("wattprint_gpu_energy_joules_total", g0, lambda m: a_j(m) + idle0(m))
    add("wattprint_job_energy_joules_total", {**g1, "job_id": "B"}, b_j)
    add("wattprint_job_gpu_seconds_total", {**g1, "job_id": "B"}, lambda m: 60 * (m + 60))
    add("wattprint_gpu_idle_energy_joules_total", g1, lambda m: 2e6)
    add("wattprint_gpu_energy_joules_total", g1, lambda m: 2e6 + b_j(m))
    # gpu01's RAPL: package 200 W; A 40 W until 01:00, B 20 W, the rest host idle; A 2 cores, B 1 core
    h1 = {**exp, "hostname": "gpu01", "instance": "gpu01:9835"}
    pkg = {**h1, "socket": "0", "domain": "package", "model": "Xeon"}
    ra = lambda m: 40.0 * 60 * min(m, 60)                                     # noqa: E731
    rb = lambda m: 20.0 * 60 * m                                              # noqa: E731
    add("wattprint_cpu_energy_joules_total", pkg, lambda m: 5e6 + 200.0 * 60 * m)
    add("wattprint_cpu_idle_energy_joules_total", pkg, lambda m: 5e6 + 200.0 * 60 * m - ra(m) - rb(m))
    add("wattprint_job_cpu_energy_joules_total", {**pkg, "job_id": "A"}, lambda m: ra(m) if m <= 60 else None)
    add("wattprint_job_cpu_energy_joules_total", {**pkg, "job_id": "B"}, rb)
    add("wattprint_job_cpu_seconds_total", {**h1, "job_id": "A"}, lambda m: 120 * m if m <= 60 else None)
    add("wattprint_job_cpu_seconds_total", {**h1, "job_id": "B"}, lambda m: 60 * m)
    add("wattprint_cpu_rapl_up", h1, lambda m: 1)
    # gpu01's BMC through the exporter's collector: 1500 W in h0, 1000 W in h1
    add("wattprint_node_energy_joules_total", {**h1, "source": "redfish"},
        lambda m: 5e8 + 1500.0 * 60 * min(m, 60) + 1000.0 * 60 * max(0, m - 60))
    # gpu02: job C at 500 W on its one GPU; no RAPL series; ipmi_exporter 800 W, then 400 W after 01:00
    c0 = {**exp, "hostname": "gpu02", "instance": "gpu02:9835", "gpu": "0", "uuid": "GPU-b0", "model": "H100"}
    add("wattprint_job_energy_joules_total", {**c0, "job_id": "C"}, lambda m: 500.0 * 60 * (m + 5))
    add("wattprint_job_gpu_seconds_total", {**c0, "job_id": "C"}, lambda m: 60 * (m + 5))
    add("wattprint_gpu_idle_energy_joules_total", c0, lambda m: 3e6)
    add("wattprint_gpu_energy_joules_total", c0, lambda m: 3e6 + 500.0 * 60 * (m + 5))
    add("ipmi_dcmi_power_consumption_watts", {"instance": "gpu02:9290", "job": "ipmi"},
        lambda m: 800 if m <= 60 else 400)
    # cpu01: RAPL package 300 W split by the exporter: D 8 and E 4 of the node's 64 cores; ipmi_exporter 450 W
    h3 = {**exp, "hostname": "cpu01", "instance": "cpu01:9835"}
    pk3 = {**h3, "socket": "0", "domain": "package", "model": "Xeon"}
    add("wattprint_cpu_energy_joules_total", pk3, lambda m: 9e6 + 300.0 * 60 * m)
    add("wattprint_cpu_idle_energy_joules_total", pk3, lambda m: 9e6 + 243.75 * 60 * m)
    add("wattprint_job_cpu_energy_joules_total", {**pk3, "job_id": "D"}, lambda m: 37.5 * 60 * m)
    add("wattprint_job_cpu_energy_joules_total", {**pk3, "job_id": "E"}, lambda m: 18.75 * 60 * m)
    add("wattprint_job_cpu_seconds_total", {**h3, "job_id": "D"}, lambda m: 480 * m)
    add("wattprint_job_cpu_seconds_total", {**h3, "job_id": "E"}, lambda m: 240 * m)
    add("wattprint_cpu_rapl_up", h3, lambda m: 1)
    add("ipmi_dcmi_power_consumption_watts", {"instance": "cpu01:9290", "job": "ipmi"}, lambda m: 450)
    # gpu03: F and G on GPU 0 (400 W, 200 W each), GPU 1 idle at 100 W; its BMC through the exporter at 1000 W
    f0 = {**exp, "hostname": "gpu03", "instance": "gpu03:9835", "gpu": "0", "uuid": "GPU-c0", "model": "H100"}
    f1 = {**f0, "gpu": "1", "uuid": "GPU-c1"}
    for job in ("F", "G"):
        add("wattprint_job_energy_joules_total", {**f0, "job_id": job}, lambda m: 200.0 * 60 * (m + 30))
        add("wattprint_job_gpu_seconds_total", {**f0, "job_id": job}, lambda m: 60 * (m + 30))
    add("wattprint_gpu_idle_energy_joules_total", f0, lambda m: 4e6)
    add("wattprint_gpu_energy_joules_total", f0, lambda m: 4e6 + 400.0 * 60 * (m + 30))
    add("wattprint_gpu_idle_energy_joules_total", f1, lambda m: 6e6 + 100.0 * 60 * m)
    add("wattprint_gpu_energy_joules_total", f1, lambda m: 6e6 + 100.0 * 60 * m)
    add("wattprint_node_energy_joules_total", {**exp, "hostname": "gpu03", "instance": "gpu03:9835",
                                               "source": "redfish"}, lambda m: 7e8 + 1000.0 * 60 * m)
    return out


LEDGER = {  # job: (project, phase, start minute, end minute, node, GPUs there)
    "A": ("proj-a", "pretraining", -10, 60, "gpu01", 1),
    "B": ("proj-b", "finetuning", -60, 180, "gpu01", 1),
    "C": ("proj-a", "evaluation", -5, 180, "gpu02", 1),
    "D": ("proj-b", "experimentation", -30, 180, "cpu01", 0),
    "E": ("proj-a", "experimentation", -30, 180, "cpu01", 0),
    "F": ("proj-a", "finetuning", -30, 180, "gpu03", 1),
    "G": ("proj-b", "finetuning", -30, 180, "gpu03", 1),
}
H0, H1 = T0, T0 + timedelta(hours=1)
# (node, hour) -> node, GPU boards, RAPL (J), from the definitions in the module docstring
NODE_HOURS = {
    ("gpu01", H0): (5_400_000, 3_240_000, 720_000), ("gpu01", H1): (3_600_000, 1_296_000, 720_000),
    ("gpu02", H0): (2_880_000, 1_800_000, 0), ("gpu02", H1): (1_452_000, 1_800_000, 0),
    ("cpu01", H0): (1_620_000, 0, 1_080_000), ("cpu01", H1): (1_620_000, 0, 1_080_000),
    ("gpu03", H0): (3_600_000, 1_800_000, 0), ("gpu03", H1): (3_600_000, 1_800_000, 0),
}
# (job or None for node idle, node, hour) -> the residual's part (J)
SHARES = {
    ("A", "gpu01", H0): 720_000, ("B", "gpu01", H0): 720_000,
    ("B", "gpu01", H1): 792_000, (None, "gpu01", H1): 792_000,
    ("C", "gpu02", H0): 1_080_000,
    ("D", "cpu01", H0): 67_500, ("E", "cpu01", H0): 33_750, (None, "cpu01", H0): 438_750,
    ("D", "cpu01", H1): 67_500, ("E", "cpu01", H1): 33_750, (None, "cpu01", H1): 438_750,
    ("F", "gpu03", H0): 450_000, ("G", "gpu03", H0): 450_000, (None, "gpu03", H0): 900_000,
    ("F", "gpu03", H1): 450_000, ("G", "gpu03", H1): 450_000, (None, "gpu03", H1): 900_000,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("node")
    store = start_prometheus_with_history(tmp / "prometheus", _history(), types=TYPES)
    cfg = tmp / "wattprint.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    settings = load_settings(str(cfg))
    con = db.connect(tmp / "node.duckdb")
    try:
        with PromClient(PromConfig(store.base_url)) as client:
            ingest(con, client, settings.queries(), T0, T0 + timedelta(hours=2), 60, endpoint=store.base_url)
    finally:
        store.stop()
    for job, (project, phase, s, e, node, gpus) in LEDGER.items():
        con.execute("INSERT INTO jobs (cluster, job_id, project, phase, start_ts, end_ts, source, origin)"
                    " VALUES ('c1', ?, ?, ?, ?, ?, 'test', 'test')",
                    [job, project, phase, T0 + timedelta(minutes=s), T0 + timedelta(minutes=e)])
        con.execute("INSERT INTO job_nodes VALUES ('c1', ?, ?, ?)", [job, node, gpus])
    for h in (H0, H1):
        con.execute("INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s,"
                    " origin) VALUES ('FR', ?, 100, 'lifecycle', 't', false, 3600, 't')", [h])
    build(con, settings.build_settings())
    con.execute("CHECKPOINT")
    shutil.copy(tmp / "node.duckdb", tmp / "to-compact.duckdb")
    yield con, settings
    con.close()


def test_the_bmc_series_are_stored_per_host_with_the_port_of_instance_dropped(built):
    con, _ = built
    got = set(con.execute("SELECT source, kind, hostname, domain FROM series WHERE source = 'node'").fetchall())
    assert got == {("node", "node_energy", "gpu01", "redfish"), ("node", "node_power", "gpu02:9290", None),
                   ("node", "node_power", "cpu01:9290", None), ("node", "node_energy", "gpu03", "redfish")}
    nodes = {(n, k) for n, k in con.execute("SELECT node, kind FROM streams WHERE source = 'node'").fetchall()}
    assert nodes == {("gpu01", "node"), ("gpu02", "node_power"), ("cpu01", "node_power"), ("gpu03", "node")}
    clusters = con.execute("SELECT DISTINCT cluster FROM streams WHERE source = 'node'").fetchall()
    assert clusters == [("c1",)]


def test_per_node_hour_gpu_plus_rapl_plus_residual_is_the_node_energy_exactly(built):
    con, _ = built
    rows = con.execute("SELECT node, hour_ts, node_j, gpu_j, rapl_j, residual_j, attributed_j, deficit_j, below_gpu,"
                       " reading_kind, rapl_read FROM fct_node_hour ORDER BY ALL").fetchall()
    assert {(n, h): (node, gpu, rapl) for n, h, node, gpu, rapl, *_ in rows} == {
        k: tuple(Decimal(v) for v in vals) for k, vals in NODE_HOURS.items()}
    for node, _, node_j, gpu_j, rapl_j, residual_j, attributed_j, deficit_j, below_gpu, kind, rapl_read in rows:
        assert gpu_j + rapl_j + residual_j == node_j                  # decimals: exactly
        assert attributed_j == max(residual_j, 0) and deficit_j == max(-residual_j, 0)
        assert below_gpu == (node_j < gpu_j)
        assert kind == ("counter" if node in ("gpu01", "gpu03") else "power")
        assert rapl_read == (node not in ("gpu02", "gpu03"))
    # and the GPU boards and RAPL are what the other layers price on that node in that hour
    gpu = {(h, t): e for h, t, e in con.execute(
        "SELECT hostname, hour_ts, sum(energy_j) FROM fct_job_gpu_hour GROUP BY ALL").fetchall()}
    rapl = {(h, t): e for h, t, e in con.execute(
        "SELECT hostname, hour_ts, sum(energy_j) FROM fct_job_cpu_hour GROUP BY ALL").fetchall()}
    for node, hour, _, gpu_j, rapl_j, *_ in rows:
        key = (node, hour)
        assert float(gpu_j) == pytest.approx(gpu.get(key, 0.0), abs=1e-6)
        assert float(rapl_j) == pytest.approx(rapl.get(key, 0.0), abs=1e-6)


def test_the_residual_is_shared_by_gpu_seconds_then_cpu_seconds_and_conserved_exactly(built):
    con, _ = built
    got = {(j, n, h): e for j, n, h, e in con.execute(
        "SELECT job_id, node, hour_ts, energy_j FROM fct_job_node_hour").fetchall()}
    assert got == {k: Decimal(v) for k, v in SHARES.items()}
    basis = dict(con.execute("SELECT job_id || '@' || node, any_value(attribution) FROM fct_job_node_hour"
                             " WHERE job_id IS NOT NULL GROUP BY 1").fetchall())
    assert basis == {"A@gpu01": "gpu_seconds", "B@gpu01": "gpu_seconds", "C@gpu02": "gpu_seconds",
                     "D@cpu01": "cpu_seconds", "E@cpu01": "cpu_seconds", "F@gpu03": "gpu_seconds",
                     "G@gpu03": "gpu_seconds"}
    # jobs + node idle == the attributed residual, per node-hour, in exact decimals
    off = con.execute(
        "SELECT count(*) FROM fct_node_hour f LEFT JOIN (SELECT node, hour_ts, sum(energy_j) AS s"
        " FROM fct_job_node_hour GROUP BY ALL) j USING (node, hour_ts) WHERE coalesce(j.s, 0) <> f.attributed_j"
        ).fetchall()[0][0]
    assert off == 0
    # priced like every result row: energy x intensity (100 g/kWh) x PUE
    for e, g, pue in con.execute("SELECT energy_j, emissions_g, pue FROM fct_job_node_hour").fetchall():
        assert pue == PUE and g == pytest.approx(float(e) / 3.6e6 * PUE * 100.0, rel=1e-12)


def test_a_bmc_reading_below_its_gpus_is_flagged_with_its_hours(built):
    con, settings = built
    report = build_report(con, settings, _options(("gpu", "cpu", "node", "idle", "pue")))
    node = report.data_quality.node
    assert node is not None
    assert (node.deficit_hours, node.below_gpu_hours, node.hours_without_bmc) == (1, 1, 0)
    assert node.deficit_kwh == pytest.approx(348_000 / 3.6e6, rel=1e-12)
    assert node.hours_without_rapl == 4 and node.power_integrated_hours == 4
    (issue,) = node.issues
    assert (issue.hostname, issue.deficit_hours, issue.deficit_at) == ("gpu02", 1, ("2024-03-01T01:00:00Z",))
    assert any("BMC read less than the GPUs and RAPL in 1 node-hours" in w for w in report.data_quality.warnings)
    schema = json.loads((REPO / "wattprint" / "pipeline" / "report" / "report-v1.schema.json").read_text("utf-8"))
    assert list(Draft202012Validator(schema).iter_errors(report.to_dict())) == []
    text = render(report, "md")
    assert "| c1 | gpu02 | 2 | 0 | 1 | 1 | 0.097 | 2024-03-01T01:00:00Z |" in text
    total_j = sum(v[0] for v in NODE_HOURS.values())
    assert node.node_energy_kwh == pytest.approx(total_j / 3.6e6, rel=1e-12)
    assert node.node_energy_kwh == pytest.approx(node.gpu_energy_kwh + node.rapl_energy_kwh + node.residual_kwh
                                                 - node.deficit_kwh, rel=1e-12)


def test_pue_applies_once_to_the_gpu_rapl_and_node_residual(built):
    """With every layer in the headline and every idle joule apportioned, the IT layers add up to the nodes' BMC
    energy (plus the one deficit, which the GPU and RAPL layers still price), and PUE multiplies that once."""
    con, settings = built
    report = build_report(con, settings, _options(("gpu", "cpu", "node", "idle", "pue")))
    layers = {r.layer: r for r in report.layers}
    node_layer = sum(v for (j, _, _), v in SHARES.items() if j is not None)
    node_idle = sum(v for (j, _, _), v in SHARES.items() if j is None)
    assert layers["node"].energy_kwh == pytest.approx(node_layer / 3.6e6, rel=1e-12) and layers["node"].included
    assert layers["idle"].node_energy_kwh == pytest.approx(node_idle / 3.6e6, rel=1e-12)
    it_j = sum(v[0] for v in NODE_HOURS.values()) + 348_000
    it_kwh = sum(layers[n].energy_kwh or 0.0 for n in ("gpu", "cpu", "node", "idle"))
    assert it_kwh == pytest.approx(it_j / 3.6e6, rel=1e-9)
    assert layers["pue"].energy_kwh == pytest.approx((PUE - 1) * it_j / 3.6e6, rel=1e-9)
    assert report.total.facility_energy_kwh == pytest.approx(PUE * it_j / 3.6e6, rel=1e-9)
    # emissions: 100 g/kWh everywhere, so the headline is the facility energy x 0.1 kg/kWh
    assert report.total.emissions_kg == pytest.approx(PUE * it_j / 3.6e6 * 0.1, rel=1e-9)


def test_node_idle_follows_the_idle_policy(built):
    con, settings = built
    layers = ("gpu", "cpu", "node", "idle", "pue")
    separate = build_report(con, settings, replace(_options(layers), idle_policy="separate"))
    rows = {r.layer: r for r in separate.layers}
    assert rows["idle"].node_energy_kwh == 0.0 and not rows["idle"].included
    node_layer = sum(v for (j, _, _), v in SHARES.items() if j is not None)
    node_idle = sum(v for (j, _, _), v in SHARES.items() if j is None)
    assert rows["node"].energy_kwh == pytest.approx(node_layer / 3.6e6, rel=1e-12)
    # reported per cluster instead, beside GPU and host idle
    (c1,) = separate.fleet.clusters if separate.fleet else ()
    assert (c1.node_energy_kwh, c1.node_job_energy_kwh, c1.node_idle_energy_kwh) == pytest.approx(
        ((node_layer + node_idle) / 3.6e6, node_layer / 3.6e6, node_idle / 3.6e6), rel=1e-12)
    assert "Node residual (BMC node energy less GPU boards and RAPL) by cluster:" in render(separate, "md")


def test_the_node_layer_is_listed_but_not_in_the_default_headline(built):
    con, settings = built
    default = build_report(con, settings, _options(("gpu", "cpu", "idle", "pue")))
    with_node = build_report(con, settings, _options(("gpu", "cpu", "node", "idle", "pue")))
    row = {r.layer: r for r in default.layers}["node"]
    assert not row.included and row.energy_kwh == pytest.approx(with_node.layers[2].energy_kwh, rel=1e-12)
    assert "node" not in default.method.layers_selected and "node residual" not in default.method.statement
    assert default.layers[3].node_energy_kwh is None      # idle: no node part without the layer
    # the headline moves by exactly the node layer, its idle share and their PUE overhead
    n = with_node.phases
    assert sum(p.layers.node.emissions_kg for p in n if p.layers.node) == pytest.approx(
        {r.layer: r for r in with_node.layers}["node"].emissions_kg, rel=1e-12)
    extra_kwh = (with_node.layers[2].energy_kwh or 0.0) + (with_node.layers[3].node_energy_kwh or 0.0)
    assert with_node.total.facility_energy_kwh - default.total.facility_energy_kwh == pytest.approx(
        PUE * extra_kwh, rel=1e-9)


def test_an_incremental_rebuild_makes_the_node_tables_as_a_full_build(built):
    con, settings = built
    tables = ("node_hour", "fct_node_hour", "fct_job_node_hour")
    full = {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}  # noqa: S608
    h1 = int(H1.timestamp()) // 3600
    rebuild_hours(con, settings.build_settings(), (h1, h1 + 1))
    assert {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables} == full  # noqa: S608


def test_closing_the_month_keeps_the_node_layer(built):
    """`wattprint compact` deletes the month's samples: the node tables are result tables, kept as built."""
    con, settings = built
    path = Path(con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
                            ).fetchall()[0][0]).with_name("to-compact.duckdb")
    c = db.connect(path)
    try:
        layers = ("gpu", "cpu", "node", "idle", "pue")
        before = build_report(c, settings, _options(layers)).to_dict()
        tables = {t: c.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall()  # noqa: S608
                  for t in ("fct_node_hour", "fct_job_node_hour")}
        result = compact(c, settings.build_settings(), 1, datetime(2024, 5, 1, tzinfo=UTC))
        assert result.months == ("2024-03",) and result.samples_deleted > 0
        assert {t: c.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables} == tables  # noqa: S608
        after = build_report(c, settings, _options(layers)).to_dict()
        assert after["data_quality"]["node"] == before["data_quality"]["node"]
        assert after["layers"] == before["layers"] and after["total"] == before["total"]
    finally:
        c.close()


def _options(layers: tuple[str, ...]) -> ReportOptions:
    return ReportOptions(window=Window(T0, T0 + timedelta(hours=2)), layers=layers,
                         generated_at=datetime(2024, 3, 2, tzinfo=UTC), time_shift_slack_hours=0)


# -- the live path: a real Prometheus scrapes ipmi_exporter's page ------------------------------------------------

class _IpmiPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = IPMI_PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_ipmi_exporters_page_scraped_by_prometheus_is_integrated_for_its_instance(tmp_path):
    binary = require_tool("prometheus")
    server, _ = loopback_server(_IpmiPage)
    try:
        target = f"localhost:{server.server_address[1]}"
        port = free_port()
        (tmp_path / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: ipmi\n    static_configs:\n      - targets: ['{target}']\n")
        prom = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/-/ready", timeout=30)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                r = requests.get(f"{base}/api/v1/query", params={"query": "count_over_time("
                                 "ipmi_dcmi_power_consumption_watts[1m])"}, timeout=5).json()["data"]["result"]
                if r and float(r[0]["value"][1]) >= 6:
                    break
                time.sleep(0.5)
            end = datetime.now(UTC).replace(microsecond=0)
            settings = load_settings(None)
            con = db.connect(tmp_path / "live.duckdb")
            with PromClient(PromConfig(base)) as client:
                ingest(con, client, settings.queries(), end - timedelta(seconds=60), end, 1, endpoint=base)
            build(con, settings.build_settings())
        finally:
            prom.terminate()
            prom.wait(timeout=30)
    finally:
        server.shutdown()
        server.server_close()
    (labels,) = con.execute("SELECT labels FROM series WHERE kind = 'node_power'").fetchall()[0]
    assert labels == f'{{"instance": "{target}", "job": "ipmi"}}'
    rows = con.execute("SELECT node, reading_kind, quality, energy_j, covered_s FROM node_hour").fetchall()
    assert rows and {r[:3] for r in rows} == {("localhost", "power", "power_integrated")}
    for *_, energy_j, covered_s in rows:       # a constant 361 W: the trapezoid rule is exact
        assert covered_s >= 4 and energy_j == pytest.approx(361.0 * covered_s, rel=1e-12)
    # no GPU or RAPL here: the whole node energy is the residual, all of it node idle
    (node_j, residual_j, basis), *_ = con.execute("SELECT node_j, residual_j, basis FROM fct_node_hour").fetchall()
    assert residual_j == node_j and basis == "none"
    con.close()


# -- one reading per node-hour -----------------------------------------------------------------------------------

def test_one_reading_per_node_hour_the_counter_where_it_covers_the_gauge_elsewhere(tmp_path):
    """Node n1 (tests/modelkit.py, as ingest stores series): ipmi_exporter's gauge at 500 W for two hours; the
    exporter's BMC counter (Redfish, 480 W) from the second hour on, and a second counter of the same node read over
    IPMI (470 W) for that hour too. Hour 0: only the gauge (integrated, a counted fallback); hour 1: the counters
    cover it all, as the gauge does: a counter wins, then the reading's name decides (ipmi before redfish);
    readings says three were there. Never added up."""
    from tests.modelkit import add_series, cover

    con = db.connect(tmp_path / "readings.duckdb")
    try:
        add_series(con, "node", "node_power", {"hostname": "n1:9290"}, [(m, 500.0) for m in range(0, 121)])
        add_series(con, "node", "node_energy", {"hostname": "n1", "domain": "redfish"},
                   [(m, 1e6 + 480.0 * 60 * (m - 60)) for m in range(60, 121)])
        add_series(con, "node", "node_energy", {"hostname": "n1", "domain": "ipmi"},
                   [(m, 2e6 + 470.0 * 60 * (m - 60)) for m in range(60, 121)])
        cover(con, "node_energy", 0, 120)
        build(con, load_settings(None).build_settings())
        rows = con.execute("SELECT hour_idx - min(hour_idx) OVER () AS h, node, reading_kind, reading, energy_j,"
                           " covered_s, quality, readings FROM node_hour ORDER BY 1").fetchall()
    finally:
        con.close()
    assert rows == [(0, "n1", "power", "", 500.0 * 3600, 3600.0, "power_integrated", 1),
                    (1, "n1", "counter", "ipmi", 470.0 * 3600, 3600.0, "counter", 3)]
