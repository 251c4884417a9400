"""`wattprint report` on a known fleet (tests/reportkit.py): every number against figures recomputed from the
generator's parameters (GPU and host energy), the formats against each other, and bad input."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from wattprint.pipeline import hardware
from wattprint.pipeline.cli import main
from wattprint.pipeline.report.fmt import num, pct
from wattprint.pipeline.report.vocabulary import CPU_ENERGY_QUALITY

from . import reportkit

REL = 1e-9


@pytest.fixture(scope="module")
def fleet(report_fleet):
    return report_fleet


@pytest.fixture(scope="module")
def truth():
    return reportkit.truth()


def report(fleet, capsys, *args: str) -> tuple[int, str, str]:
    db_path, cfg = fleet
    code = main(["report", "--db", str(db_path), "--config", str(cfg), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def as_json(fleet, capsys, *args: str) -> dict:
    code, out, err = report(fleet, capsys, *args, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def test_phase_blocks_match_the_generator(fleet, truth, capsys):
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03")
    assert [p["phase"] for p in r["phases"]] == ["experimentation", "pretraining", "finetuning"]   # lifecycle order
    rate = hardware.DEFAULT_EMBODIED_KGCO2EQ_PER_GPU / (6 * 8760 * 0.85)
    for p in r["phases"]:
        key = ("idefics", p["phase"])
        assert p["energy_kwh"] == pytest.approx(truth.energy_j[key] / 3.6e6, rel=REL)
        layers = p["layers"]
        assert layers["gpu"]["emissions_kg"] == pytest.approx(truth.gpu_g[key] / 1000, rel=REL)
        assert layers["idle"]["gpu_energy_kwh"] == pytest.approx(truth.idle_j[key] / 3.6e6, rel=REL, abs=1e-12)
        assert layers["idle"]["energy_kwh"] == pytest.approx((truth.idle_j[key] + truth.cpu_idle_j[key]) / 3.6e6,
                                                             rel=REL, abs=1e-12)
        assert layers["idle"]["emissions_kg"] == pytest.approx((truth.idle_g[key] + truth.cpu_idle_g[key]) / 1000,
                                                               rel=REL, abs=1e-12)
        assert layers["pue"]["emissions_kg"] == pytest.approx((truth.pue_g[key] + truth.pue_cpu_g[key]) / 1000,
                                                              rel=REL)
        assert p["gpu_hours"] == pytest.approx(truth.gpu_s[key] / 3600, rel=REL)
        assert layers["embodied"]["emissions_kg"] == pytest.approx(truth.gpu_s[key] / 3600 * rate, rel=REL)
        # the default headline: gpu + cpu + idle share (GPUs and hosts) + PUE overhead, embodied beside it
        assert p["emissions_kg"] == pytest.approx(truth.headline_g(key) / 1000, rel=REL)
        own_g = truth.gpu_g[key] + truth.cpu_g[key]
        own_kwh = (truth.energy_j[key] + truth.cpu_j[key]) / 3.6e6
        assert p["intensity_g_per_kwh"] == pytest.approx(own_g / own_kwh, rel=REL)
    pre = r["phases"][1]
    assert pre["hardware"] == [{"model": reportkit.H100, "gpus": 4, "gpu_hours": pytest.approx(192.0)}]
    assert pre["cpu_hardware"] == [{"model": reportkit.CPU_MODEL["ip-10-0-0-1"], "sockets": 2, "hosts": 1}]
    assert pre["hardware_text"] == "2 Intel(R) Xeon(R) Platinum 8275CL CPUs, 4 NVIDIA H100 80GB HBM3 GPUs"
    assert pre["wall_clock_hours"] == pytest.approx(48.0)           # 02:00 on day 1 to 02:00 on day 3
    assert pre["jobs"] == 1 and pre["clusters"][0]["provider"] == "aws"
    assert pre["clusters"][0]["zone"] == "aws:us-west-2"
    fine = r["phases"][2]
    assert {c["cluster"] for c in fine["clusters"]} == {"jean-zay", "aws-usw2"}
    assert fine["wall_clock_hours"] == pytest.approx((4000 - 3000) / 60)   # f1 and f2 overlap: the union
    total = sum(truth.headline_g(k) for k in truth.energy_j if k[0] == "idefics")
    assert r["total"]["emissions_kg"] == pytest.approx(total / 1000, rel=REL)
    assert sum(x["emissions_kg"] for x in r["layers"] if x["included"]) == pytest.approx(r["total"]["emissions_kg"])
    assert r["method"]["layers_selected"] == ["gpu", "cpu", "idle", "pue"]
    dq = r["data_quality"]
    assert dq["energy"]["counter"] == pytest.approx(1.0) and dq["cpu_energy"]["counter"] == pytest.approx(1.0)
    assert 0 < dq["intensity"]["nearest_hour"] < 0.1   # the two missing us-west-2 hours
    # the only warning: the nodes without (fully) readable RAPL
    assert len(dq["warnings"]) == 1 and "no readable RAPL" in dq["warnings"][0] and not dq["poor"]


def test_host_energy_matches_the_generator(fleet, truth, capsys):
    """CPU energy (package, DRAM), CPU core-hours and the host idle share per phase, hour by hour from the
    generator, including the CPU-only job d1 and the jobs on jz2, which has CPU time but no RAPL."""
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03")
    for p in r["phases"]:
        key = ("idefics", p["phase"])
        assert p["cpu_energy_kwh"] == pytest.approx(truth.cpu_j[key] / 3.6e6, rel=REL)
        assert p["cpu_package_kwh"] == pytest.approx(truth.cpu_pkg_j[key] / 3.6e6, rel=REL)
        assert p["cpu_dram_kwh"] == pytest.approx(truth.cpu_dram_j[key] / 3.6e6, rel=REL)
        assert p["cpu_package_kwh"] + p["cpu_dram_kwh"] == pytest.approx(p["cpu_energy_kwh"], rel=REL)
        assert p["cpu_hours"] == pytest.approx(truth.cpu_s[key] / 3600, rel=REL)
        cpu = p["layers"]["cpu"]
        assert cpu["energy_kwh"] == pytest.approx(p["cpu_energy_kwh"], rel=REL)
        assert cpu["emissions_kg"] == pytest.approx(truth.cpu_g[key] / 1000, rel=REL)
        assert p["layers"]["idle"]["cpu_energy_kwh"] == pytest.approx(truth.cpu_idle_j[key] / 3.6e6, rel=REL)
    exp = r["phases"][0]
    assert exp["jobs"] == 3                                 # e1, e2 and the CPU-only d1
    # GPUs are counted from GPU rows only: jz1's two and jz2's first; d1 adds none
    assert exp["hardware"] == [{"model": reportkit.A100, "gpus": 3, "gpu_hours": pytest.approx(exp["gpu_hours"])}]
    assert exp["cpu_hardware"] == [{"model": reportkit.CPU_MODEL["jz1"], "sockets": 2, "hosts": 1}]   # jz2: no RAPL
    t = r["total"]
    assert t["cpu_energy_kwh"] == pytest.approx(sum(truth.cpu_j[k] for k in truth.cpu_j if k[0] == "idefics") / 3.6e6,
                                                rel=REL)
    assert t["cpu_hours"] == pytest.approx(sum(truth.cpu_s[k] for k in truth.cpu_s if k[0] == "idefics") / 3600,
                                           rel=REL)
    assert {h["model"]: h["gpus"] for h in t["hardware"]} == {reportkit.A100: 4, reportkit.H100: 4}
    assert {h["model"]: h["sockets"] for h in t["cpu_hardware"]} == {reportkit.CPU_MODEL["jz1"]: 2,
                                                                     reportkit.CPU_MODEL["ip-10-0-0-1"]: 2}
    cpu_layer = next(x for x in r["layers"] if x["layer"] == "cpu")
    assert cpu_layer["included"] and cpu_layer["energy_kwh"] == pytest.approx(t["cpu_energy_kwh"], rel=REL)
    assert t["facility_energy_kwh"] == pytest.approx(sum(x["energy_kwh"] for x in r["layers"] if x["included"]),
                                                     rel=REL)
    assert sum(d["cpu_energy_kwh"] for d in r["daily"]) == pytest.approx(t["cpu_energy_kwh"], rel=REL)
    assert sum(h["cpu_power_w"] for h in r["hourly"]) / 1000 == pytest.approx(t["cpu_energy_kwh"], rel=REL)


def test_nodes_without_readable_rapl(fleet, truth, capsys):
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03")
    rapl = r["data_quality"]["rapl"]
    assert rapl["nodes"] == 3 and rapl["nodes_without"] == 2
    nodes = {n["hostname"]: n for n in rapl["without"]}
    jz2, ip = nodes["jz2"], nodes["ip-10-0-0-1"]
    assert jz2["reason"] == "no RAPL series (collector off or exporter without it)" and jz2["samples"] == 0
    assert jz2["unreadable_share"] == 1.0
    assert ip["reason"] == "RAPL not readable in 3 of 864 samples"
    assert (ip["samples"], ip["readable_samples"], ip["hours_without_rapl"]) == (864, 861, 0)
    assert ip["unreadable_share"] == pytest.approx(3 / 864)
    # each node's share of the report's GPU energy, from the generator: jz2 carries e2, and f1 on its two GPUs
    per_gpu_j = {("jz2", "e2"): 300.0 * (900 - 200) * 60, ("jz2", "f1"): 2 * 450.0 * (3900 - 3000) * 60}
    gpu_j = sum(truth.energy_j[k] for k in truth.energy_j if k[0] == "idefics")
    assert jz2["gpu_energy_share"] == pytest.approx(sum(per_gpu_j.values()) / gpu_j, rel=REL)
    p1 = 4 * 650.0 * (3000 - 120) * 60
    f2 = 2 * 500.0 * (4000 - 3100) * 60
    assert ip["gpu_energy_share"] == pytest.approx((p1 + f2) / gpu_j, rel=REL)
    assert rapl["unreadable_gpu_energy_share"] == pytest.approx(
        jz2["gpu_energy_share"] + ip["gpu_energy_share"] * 3 / 864, rel=REL)
    (warning,) = r["data_quality"]["warnings"]
    assert "jz2" in warning and "ip-10-0-0-1" in warning and "2 of the 3 nodes" in warning
    code, md, _ = report(fleet, capsys, "--project", "idefics", "--month", "2024-03")
    assert md.index("no readable RAPL") < md.index("## Environmental Impact")
    assert "| jean-zay | jz2 | no RAPL series (collector off or exporter without it) |" in md
    # without the cpu layer, missing host energy changes nothing in the headline: no warning (the list stays)
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--layers", "gpu,idle,pue")
    assert r["data_quality"]["warnings"] == [] and r["data_quality"]["rapl"]["nodes_without"] == 2
    # only the 3 unreadable samples of ip-10-0-0-1 in scope: listed, but not material
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--phase", "pretraining")
    assert [n["hostname"] for n in r["data_quality"]["rapl"]["without"]] == ["ip-10-0-0-1"]
    assert r["data_quality"]["warnings"] == []


def test_a_fleet_without_any_rapl_says_so_once(fleet, truth, capsys, tmp_path):
    """GPU series only (dcgm, or exporters without the RAPL collector): the cpu layer is 0, the CPU core-hours are
    still counted, and one warning says host energy is not measured at all."""
    from wattprint.pipeline import db
    from wattprint.pipeline.model import build
    from wattprint.pipeline.settings import load_settings

    db_path, cfg = fleet
    copy = tmp_path / "no-rapl.duckdb"
    shutil.copy(db_path, copy)
    con = db.connect(copy)
    kinds = ["cpu_energy", "cpu_idle_energy", "job_cpu_energy", "cpu_rapl_up"]
    con.execute("DELETE FROM samples WHERE series_id IN (SELECT series_id FROM series WHERE list_contains(?, kind))",
                [kinds])
    con.execute("DELETE FROM series WHERE list_contains(?, kind)", [kinds])
    build(con, load_settings(str(cfg)).build_settings())
    con.close()
    r = as_json((copy, cfg), capsys, "--project", "idefics", "--month", "2024-03")
    assert r["total"]["cpu_energy_kwh"] == 0 and r["total"]["cpu_hardware"] == []
    assert r["total"]["cpu_hours"] == pytest.approx(sum(truth.cpu_s[k] for k in truth.cpu_s if k[0] == "idefics")
                                                    / 3600, rel=REL)
    gpu_view = sum(truth.gpu_g[k] + truth.idle_g[k] + truth.pue_g[k] for k in truth.gpu_g if k[0] == "idefics")
    assert r["total"]["emissions_kg"] == pytest.approx(gpu_view / 1000, rel=REL)      # nothing of the host
    assert r["data_quality"]["rapl"]["nodes_without"] == r["data_quality"]["rapl"]["nodes"] == 3
    assert [w for w in r["data_quality"]["warnings"] if "RAPL" in w] == [
        "no node in this report exported RAPL series, so its jobs' CPU energy (layer cpu) is not measured: run the "
        "exporter with its RAPL collector where /sys/class/powercap is readable, or leave cpu out of report.layers"]
    assert r["phases"][1]["hardware_text"] == "4 NVIDIA H100 80GB HBM3 GPUs"


def test_layers_flag_and_separate_idle_policy(fleet, truth, capsys):
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--layers", "all")
    assert r["method"]["layers_selected"] == ["gpu", "cpu", "idle", "pue", "embodied"]
    assert r["total"]["emissions_kg"] == pytest.approx(sum(x["emissions_kg"] for x in r["layers"]))
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--layers", "gpu")
    gpu_only = sum(truth.gpu_g[k] for k in truth.gpu_g if k[0] == "idefics") / 1000
    assert r["total"]["emissions_kg"] == pytest.approx(gpu_only, rel=REL)
    # without the cpu layer, idle and PUE cover GPU energy only: the figures of a GPU-only report
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--layers", "gpu,idle,pue")
    gpu_view = sum(truth.gpu_g[k] + truth.idle_g[k] + truth.pue_g[k] for k in truth.gpu_g if k[0] == "idefics")
    assert r["total"]["emissions_kg"] == pytest.approx(gpu_view / 1000, rel=REL)
    cpu = next(x for x in r["layers"] if x["layer"] == "cpu")
    assert not cpu["included"] and cpu["emissions_kg"] > 0            # shown beside the headline
    assert next(x for x in r["layers"] if x["layer"] == "idle")["cpu_energy_kwh"] == 0
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--idle-policy", "separate")
    assert r["method"]["layers_selected"] == ["gpu", "cpu", "pue"]
    assert all(p["layers"]["idle"]["energy_kwh"] == 0 for p in r["phases"])
    # PUE overhead then applies to the jobs' own GPU and CPU energy only
    own = sum(truth.gpu_g[k] + truth.cpu_g[k] for k in truth.gpu_g if k[0] == "idefics")
    pue = sum(truth.pue_g[k] for k in truth.gpu_g if k[0] == "idefics")   # includes the GPU idle share: more
    assert own / 1000 < r["total"]["emissions_kg"] < (own + pue + sum(
        truth.pue_cpu_g[k] for k in truth.cpu_g if k[0] == "idefics")) / 1000


def test_fleet_report_reconciles_to_the_whole_fleet(fleet, truth, capsys):
    r = as_json(fleet, capsys, "--month", "2024-03")
    assert r["kind"] == "fleet" and r["project"] is None
    rc = r["reconciliation"]
    assert rc["fleet_energy_kwh"] == pytest.approx(truth.fleet_j / 3.6e6, rel=REL)
    assert rc["not_in_ledger_kwh"] == pytest.approx(truth.not_in_ledger_j / 3.6e6, rel=REL)
    assert rc["idle_unapportioned_kwh"] == pytest.approx(truth.unapportioned_idle_j / 3.6e6, rel=REL)
    parts = rc["projects_energy_kwh"] + rc["not_in_ledger_kwh"] + rc["idle_apportioned_kwh"] + \
        rc["idle_unapportioned_kwh"]
    assert parts == pytest.approx(rc["fleet_energy_kwh"], rel=REL)            # conservation
    projects = {p["project"]: p for p in r["projects"]}
    assert set(projects) == {"idefics", "bloom-mini", "(not in the job ledger)"}
    bloom = ("bloom-mini", "pretraining")
    assert projects["bloom-mini"]["emissions_kg"] == pytest.approx(truth.headline_g(bloom) / 1000, rel=REL)
    assert projects["bloom-mini"]["cpu_energy_kwh"] == pytest.approx(truth.cpu_j[bloom] / 3.6e6, rel=REL)
    assert projects["bloom-mini"]["cpu_hours"] == pytest.approx(truth.cpu_s[bloom] / 3600, rel=REL)
    assert r["top_jobs"][0]["job_id"] == "p1"
    d1 = next(j for j in r["top_jobs"] if j["job_id"] == "d1")                 # the CPU-only job
    assert d1["gpu_hours"] == 0 and d1["energy_kwh"] == 0 and d1["cpu_energy_kwh"] > 0
    assert d1["cpu_hours"] == pytest.approx(16 * (840 - 240) / 60)
    assert [c["cluster"] for c in r["clusters"]] == ["aws-usw2", "jean-zay"]
    assert {c["cluster"]: c["gpus"] for c in r["clusters"]} == {"aws-usw2": 4, "jean-zay": 4}
    assert {c["cluster"]: c["cpu_sockets"] for c in r["clusters"]} == {"aws-usw2": 2, "jean-zay": 2}
    assert sum(c["energy_kwh"] for c in r["clusters"]) == pytest.approx(rc["fleet_energy_kwh"], rel=REL)
    assert r["previous"] is None and r["change"] is None                 # nothing stored for 2024-02
    # sum over projects of the headline = the fleet headline
    assert sum(p["emissions_kg"] for p in r["projects"]) == pytest.approx(r["total"]["emissions_kg"], rel=REL)


def test_fleet_reconciles_host_energy_to_the_joule(fleet, truth, capsys):
    r = as_json(fleet, capsys, "--month", "2024-03")
    host = r["reconciliation"]["cpu"]
    assert host["fleet_energy_kwh"] == pytest.approx(truth.cpu_fleet_j / 3.6e6, rel=REL)
    assert host["not_in_ledger_kwh"] == pytest.approx(truth.cpu_not_in_ledger_j / 3.6e6, rel=REL)
    assert host["not_in_ledger_kwh"] > 0                                      # x9
    assert host["idle_unapportioned_kwh"] == pytest.approx(truth.cpu_unapportioned_idle_j / 3.6e6, rel=REL)
    assert host["idle_unapportioned_kwh"] > 0          # the first hours, before any job had CPU time
    in_ledger = sum(truth.cpu_j[k] for k in truth.cpu_j if k[0] is not None)
    assert host["projects_energy_kwh"] == pytest.approx(in_ledger / 3.6e6, rel=REL)
    assert host["idle_apportioned_kwh"] == pytest.approx(sum(truth.cpu_idle_j.values()) / 3.6e6, rel=REL)
    parts = (host["projects_energy_kwh"] + host["not_in_ledger_kwh"] + host["idle_apportioned_kwh"]
             + host["idle_unapportioned_kwh"])
    assert parts * 3.6e6 == pytest.approx(host["fleet_energy_kwh"] * 3.6e6, rel=REL)   # to the joule
    assert sum(c["cpu_energy_kwh"] for c in r["clusters"]) == pytest.approx(host["fleet_energy_kwh"], rel=REL)
    # under the separate policy, all host idle is unapportioned
    r = as_json(fleet, capsys, "--month", "2024-03", "--idle-policy", "separate")
    host = r["reconciliation"]["cpu"]
    assert host["idle_apportioned_kwh"] == 0
    assert host["projects_energy_kwh"] + host["not_in_ledger_kwh"] + host["idle_unapportioned_kwh"] == \
        pytest.approx(host["fleet_energy_kwh"], rel=REL)


def test_change_against_the_previous_window(fleet, capsys):
    r = as_json(fleet, capsys, "--start", "2024-03-02T00:00:00Z", "--end", "2024-03-03T00:00:00Z")
    prev = r["previous"]
    assert prev["start"] == "2024-03-01T00:00:00Z" and prev["end"] == "2024-03-02T00:00:00Z"
    assert r["change"]["energy_pct"] == pytest.approx(r["total"]["energy_kwh"] / prev["energy_kwh"] - 1)


def test_whatif_prices_the_same_hours_in_each_zone(fleet, truth, capsys):
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--phase", "pretraining")
    w = r["whatif"]
    opts = {o["cluster"]: o for o in w["options"]}
    # pretraining ran only on aws-usw2: priced there again, it must equal the actual figure
    assert opts["aws-usw2"]["emissions_kg"] == pytest.approx(w["actual_kg"], rel=1e-9)
    # in France: the same hourly energy (GPU, CPU and host idle share) x FR intensity at those hours x jean-zay's PUE
    job = next(j for j in reportkit.JOBS if j.job_id == "p1")
    hourly: dict[int, float] = {}
    for m in range(job.start_min, job.end_min, reportkit.STEP_MIN):
        hourly[m // 60] = hourly.get(m // 60, 0.0) + job.watts * reportkit.STEP_MIN * 60 * len(job.gpus)
    for (_, h, jid), e in list(truth.cpu_hourly_j.items()) + list(truth.cpu_idle_hourly_j.items()):
        if jid == "p1":
            hourly[h] = hourly.get(h, 0.0) + e
    fr_g = sum(e / 3.6e6 * reportkit.intensity("FR", h) * reportkit.PUE["jean-zay"] for h, e in hourly.items())
    # + the GPU idle share, which is 0 here (p1 holds all four GPUs whenever it runs)
    assert truth.idle_j[("idefics", "pretraining")] == 0
    assert opts["jean-zay"]["emissions_kg"] == pytest.approx(fr_g / 1000, rel=1e-9)
    assert w["best"]["cluster"] == "jean-zay"
    assert w["saving_kg"] == pytest.approx(w["actual_kg"] - fr_g / 1000, rel=1e-9)


def _md_numbers(md: str) -> str:
    return md.replace("\u00a0", " ")


def test_formats_agree(fleet, capsys, tmp_path):
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03")
    code, md, err = report(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--format", "md")
    assert code == 0, err
    for p in r["phases"]:
        block = md.split(f"*{p['title']}*", 1)[1].split("\n\n", 1)[0]
        assert f"Carbon Emitted: {num(p['emissions_kg'])} kg of CO2eq" in block
        assert f"Energy: {num(p['energy_kwh'], 'kWh')} of GPU energy, {num(p['cpu_energy_kwh'], 'kWh')} of CPU " \
               f"energy (package {num(p['cpu_package_kwh'])}, DRAM {num(p['cpu_dram_kwh'])}) (measured)" in block
        assert f"({num(p['gpu_hours'])} GPU-hours, {num(p['cpu_hours'])} CPU core-hours, {p['jobs']} job" in block
        assert p["hardware_text"] in block
    for x in r["layers"]:
        assert f"| {x['title']} | {num(x['energy_kwh'])} | {num(x['emissions_kg'])} |" in md
    assert f"**{num(r['total']['emissions_kg'])}**" in md
    for p in r["phases"]:
        assert f"| {p['phase']} | {num(p['layers']['gpu']['emissions_kg'])} | " \
               f"{num(p['layers']['cpu']['emissions_kg'])} | {num(p['layers']['idle']['emissions_kg'])} |" in md
    names = dict(CPU_ENERGY_QUALITY)      # one vocabulary for every human format
    for k, v in r["data_quality"]["cpu_energy"].items():
        assert f"| {names[k]} | {pct(v)} |" in md
    # CSV: every number of the JSON, unrounded
    code, text, err = report(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(text)))
    got = {(x["section"], x["item"], x["field"]): float(x["value"]) for x in rows}
    assert got[("total", "", "emissions_kg")] == r["total"]["emissions_kg"]
    for p in r["phases"]:
        item = f"{p['phase']}/{p['label']}"
        assert got[("phases", item, "energy_kwh")] == p["energy_kwh"]
        assert got[("phases", item, "layers.idle.emissions_kg")] == p["layers"]["idle"]["emissions_kg"]
    units = {(x["section"], x["field"]): x["unit"] for x in rows}
    assert units[("total", "emissions_kg")] == "kgCO2eq" and units[("total", "energy_kwh")] == "kWh"
    for n in r["data_quality"]["rapl"]["without"]:
        item = f"{n['cluster']}/{n['hostname']}"
        assert got[("data_quality", item, "rapl.without.gpu_energy_share")] == n["gpu_energy_share"]
    assert got[("total", "", "cpu_energy_kwh")] == r["total"]["cpu_energy_kwh"]
    assert units[("total", "cpu_hours")] == "core-hours" and units[("total", "cpu_package_kwh")] == "kWh"
    n_numbers = len(re.findall(r'": -?[0-9]', json.dumps(r)))
    assert len(rows) == n_numbers           # one CSV row per number in the JSON
    assert len({(x["section"], x["item"], x["field"]) for x in rows}) == len(rows)      # each one named once


def test_fleet_formats_agree(fleet, capsys):
    """The all-projects tables and the host reconciliation: Markdown shows the JSON's numbers rounded, CSV has
    every number once."""
    r = as_json(fleet, capsys, "--month", "2024-03")
    code, md, err = report(fleet, capsys, "--month", "2024-03")
    assert code == 0, err
    for p in r["projects"]:
        assert f"| {p['project']} | {num(p['energy_kwh'])} | {num(p['cpu_energy_kwh'])} | {num(p['gpu_hours'])} | " \
               f"{num(p['cpu_hours'])} | {num(p['emissions_kg'])} |" in md
    for j in r["top_jobs"]:
        assert f"| {num(j['gpu_hours'])} | {num(j['cpu_hours'])} | {num(j['energy_kwh'])} | " \
               f"{num(j['cpu_energy_kwh'])} | {num(j['emissions_kg'])} |" in md
    for c in r["clusters"]:
        assert f"| {c['cpu_sockets']} | {num(c['cpu_energy_kwh'])} | {pct(c['cpu_idle_share'])} |" in md
    host = r["reconciliation"]["cpu"]
    block = md.split("| Host CPU energy (RAPL) | kWh |", 1)[1].split("\n\n", 1)[0]
    for label, key in (("whole fleet", "fleet_energy_kwh"), ("projects' jobs", "projects_energy_kwh"),
                       ("jobs not in the ledger", "not_in_ledger_kwh"),
                       ("host idle, apportioned to jobs", "idle_apportioned_kwh"),
                       ("host idle, not apportioned", "idle_unapportioned_kwh")):
        assert f"| {label} | {num(host[key])} |" in block
    code, text, err = report(fleet, capsys, "--month", "2024-03", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    got = {(x["section"], x["item"], x["field"]): float(x["value"]) for x in rows}
    assert got[("reconciliation", "", "cpu.fleet_energy_kwh")] == host["fleet_energy_kwh"]
    assert len(got) == len(rows) == len(re.findall(r'": -?[0-9]', json.dumps(r)))


def test_model_card_gets_grams_and_keeps_the_rest(fleet, capsys, tmp_path):
    card = tmp_path / "README.md"
    shutil.copy(Path(__file__).parent / "fixtures" / "modelcards" / "idefics_style.md", card)
    before = card.read_text(encoding="utf-8")
    code, _, err = report(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--format", "model-card",
                          "--out", str(card))
    assert code == 0, err
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03")
    after = card.read_text(encoding="utf-8")
    meta = yaml.safe_load(after.split("---\n")[1])
    co2 = meta["co2_eq_emissions"]
    assert co2["emissions"] == pytest.approx(r["total"]["emissions_kg"] * 1000, abs=0.01)    # grams
    assert co2["training_type"] == "pre-training"
    assert "fr-idf" in co2["geographical_location"] and "us-west-2" in co2["geographical_location"]
    assert co2["hardware_used"] == ("2 x Intel(R) Xeon(R) Gold 6248 CPUs, 2 x Intel(R) Xeon(R) Platinum 8275CL CPUs, "
                                    "4 x NVIDIA A100-SXM4-80GB, 4 x NVIDIA H100 80GB HBM3")
    assert "GPU and CPU energy" in co2["source"] and "gpu+cpu+idle+pue" in co2["source"]
    assert before.split("---\n", 2)[2] == after.split("---\n", 2)[2]          # the body is untouched
    old_meta = yaml.safe_load(before.split("---\n")[1])
    assert {k: v for k, v in old_meta.items() if k != "co2_eq_emissions"} == \
        {k: v for k, v in meta.items() if k != "co2_eq_emissions"}


def test_model_card_with_broken_front_matter_is_left_alone(fleet, capsys, tmp_path):
    card = tmp_path / "README.md"
    shutil.copy(Path(__file__).parent / "fixtures" / "modelcards" / "broken_yaml.md", card)
    before = card.read_bytes()
    code, _, err = report(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--format", "model-card",
                          "--out", str(card))
    assert code == 2 and "README.md:" in err and "Traceback" not in err
    assert card.read_bytes() == before


def test_model_card_without_front_matter_gets_one(fleet, capsys, tmp_path):
    card = tmp_path / "README.md"
    shutil.copy(Path(__file__).parent / "fixtures" / "modelcards" / "no_front_matter.md", card)
    before = card.read_text(encoding="utf-8")
    code, _, err = report(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--format", "model-card",
                          "--out", str(card))
    assert code == 0 and "had no YAML front matter" in err
    assert card.read_text(encoding="utf-8").endswith(before)


def test_manual_phases_are_merged_and_labelled(fleet, capsys, tmp_path):
    est = tmp_path / "estimates.yaml"
    est.write_text("phases:\n  - project: idefics\n    phase: experimentation\n    name: preliminary experimentation\n"
                   "    cluster: jean-zay\n    gpu_model: V100\n    gpu_hours: 1000\n    intensity: 57\n",
                   encoding="utf-8")
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--estimates", str(est))
    labels = [(p["phase"], p["label"]) for p in r["phases"]]
    assert labels[:2] == [("experimentation", "measured"), ("experimentation", "estimated (TDP)")]
    e = r["phases"][1]
    assert e["energy_kwh"] == pytest.approx(1000 * 300 / 1000)                  # V100 SXM2: 300 W
    assert e["layers"]["gpu"]["emissions_kg"] == pytest.approx(300 * 57 / 1000)
    assert e["title"] == "idefics preliminary experimentation"
    assert r["data_quality"]["energy"]["estimated"] > 0
    assert any("estimated from TDP" in w for w in r["data_quality"]["warnings"])
    code, md, _ = report(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--estimates", str(est))
    assert "*idefics preliminary experimentation* (estimated (TDP))" in md


def test_manual_phases_with_cpu_hours(fleet, capsys, tmp_path):
    """A manual phase with CPU core-hours: CPU energy = core-hours x watts per core, priced and labelled like the
    GPU part; a CPU-only entry needs no GPU."""
    est = tmp_path / "estimates.yaml"
    est.write_text("phases:\n"
                   "  - {project: idefics, phase: experimentation, name: preliminary experimentation, gpu_model: V100,"
                   " gpu_hours: 1000, cpu_hours: 4000, cpu_model: Intel Xeon Gold 6248, cpu_watts_per_socket: 150,"
                   " cores_per_socket: 20, intensity: 57, pue: 1.2}\n"
                   "  - {project: idefics, phase: evaluation, cpu_hours: 100, cpu_watts_per_core: 10,"
                   " intensity: 100}\n", encoding="utf-8")
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--estimates", str(est))
    e = next(p for p in r["phases"] if p["title"] == "idefics preliminary experimentation")
    assert e["cpu_energy_kwh"] == pytest.approx(4000 * 7.5 / 1000)              # 150 W / 20 cores
    assert e["cpu_hours"] == pytest.approx(4000) and e["energy_kwh"] == pytest.approx(300)
    assert e["layers"]["cpu"]["emissions_kg"] == pytest.approx(30 * 57 / 1000)
    assert e["layers"]["pue"]["emissions_kg"] == pytest.approx(0.2 * (300 + 30) * 57 / 1000)
    assert e["emissions_kg"] == pytest.approx(1.2 * 330 * 57 / 1000)
    assert e["hardware_text"] == "Intel Xeon Gold 6248 CPUs, V100 GPUs"
    assert e["cpu_hardware"] == [{"model": "Intel Xeon Gold 6248", "sockets": 0, "hosts": 0}]
    ev = next(p for p in r["phases"] if p["phase"] == "evaluation")
    assert ev["label"] == "estimated (TDP)" and ev["gpu_hours"] == 0 and ev["hardware"] == []
    assert ev["cpu_energy_kwh"] == pytest.approx(1.0) and ev["emissions_kg"] == pytest.approx(0.1)
    assert ev["hardware_text"] == "unknown CPU model CPUs"
    dq = r["data_quality"]
    assert dq["cpu_energy"]["estimated"] == pytest.approx(31 / r["total"]["cpu_energy_kwh"])
    assert any("estimated from TDP" in w for w in dq["warnings"])
    assert dq["intensity"]["declared"] > 0


@pytest.mark.parametrize("args, where, text", [
    (("--project", "idefix", "--month", "2024-03"), "--project", "did you mean 'idefics'"),
    (("--project", "idefics", "--phase", "pretrainig", "--month", "2024-03"), "--phase", "unknown phase"),
    (("--project", "idefics", "--month", "2024-05"), "--month", "no measured energy"),
    (("--month", "2024-13"), "--month", "is not a month"),
    (("--start", "2024-03-01T00:30:00Z", "--end", "2024-03-02T00:00:00Z"), "--start", "whole UTC hour"),
    (("--start", "2024-03-02T00:00:00Z", "--end", "2024-03-01T00:00:00Z"), "--end", "not after"),
    (("--project", "idefics"), "--start", "needs a window"),
    (("--month", "2024-03", "--layers", "gpu,solar"), "--layers", "unknown layer"),
    (("--month", "2024-03", "--layers", "idle,pue"), "--layers", "always part"),
    (("--month", "2024-03", "--format", "model-card", "--out", "x.md"), "--project", "one project"),
    (("--month", "2024-03", "--top-jobs", "0"), "--top-jobs", "not a positive"),
])
def test_bad_input_is_one_clear_line(fleet, capsys, args, where, text):
    code, out, err = report(fleet, capsys, *args)
    assert code == 2, err
    assert err.startswith("wattprint report: error: ") and where in err and text in err, err
    assert "Traceback" not in err and out == ""


def test_absurd_config_values_are_refused(fleet, capsys, tmp_path):
    db_path, _ = fleet
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(reportkit.CONFIG.replace("pue: 1.2", "pue: 0.9"), encoding="utf-8")
    code = main(["report", "--db", str(db_path), "--config", str(cfg), "--month", "2024-03"])
    err = capsys.readouterr().err
    assert code == 2 and "bad.yaml:" in err and "pue" in err


def test_window_without_intensity_is_flagged_not_silent(tmp_path, capsys):
    db_path, cfg = reportkit.build(tmp_path)
    from wattprint.pipeline import db
    from wattprint.pipeline.model import build
    from wattprint.pipeline.settings import load_settings

    con = db.connect(db_path)
    con.execute("DELETE FROM intensity_hourly")
    build(con, load_settings(str(cfg)).build_settings())
    con.close()
    r = as_json((db_path, cfg), capsys, "--project", "idefics", "--month", "2024-03")
    dq = r["data_quality"]
    assert dq["intensity"]["hourly"] == 0 and dq["poor"]
    assert any("hourly grid intensity" in w for w in dq["warnings"])
    assert r["total"]["emissions_kg"] > 0          # priced with the shipped annual values, and said so
    code, md, _ = report((db_path, cfg), capsys, "--project", "idefics", "--month", "2024-03")
    assert md.index("Data quality: read these numbers with care") < md.index("## Environmental Impact")


def test_a_schema_1_database_is_upgraded_by_build(tmp_path, capsys):
    """Results built before schema 2 have no GPU-seconds: the report says to run build, and build fixes it."""
    import duckdb

    from wattprint.pipeline import db as dbmod

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    version, name, sql = dbmod.migrations()[0]
    con.execute(sql)
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    con.execute("INSERT INTO series (series_id, source, kind, query, fingerprint, labels) VALUES"
                " (1, 'dcgm', 'gpu_energy', 'q', 'f', '{\"modelName\": \"NVIDIA H100 80GB HBM3\"}')")
    con.close()
    code = main(["report", "--db", str(path), "--month", "2024-03"])
    err = capsys.readouterr().err
    assert code == 2 and "schema version 1" in err and "wattprint build" in err
    assert main(["build", "--db", str(path), "-q"]) == 0
    con = duckdb.connect(str(path))
    assert con.execute("SELECT model FROM series").fetchall() == [("NVIDIA H100 80GB HBM3",)]   # backfilled
    con.close()
    code = main(["report", "--db", str(path), "--month", "2024-03"])
    assert code == 2 and "no measured energy" in capsys.readouterr().err


def test_a_project_known_only_from_manual_phases(fleet, capsys, tmp_path):
    est = tmp_path / "history.yaml"
    est.write_text("phases:\n"
                   "  - {project: idefics-80b, phase: pretraining, gpu_model: A100, gpus: 512, hours: 672,"
                   " intensity: 288, provider: aws, region: aws:us-west-2}\n"
                   "  - {project: idefics-80b, phase: finetuning, gpu_model: A100, gpus: 384, hours: 72,"
                   " intensity: 288}\n", encoding="utf-8")
    r = as_json(fleet, capsys, "--project", "idefics-80b", "--month", "2024-03", "--estimates", str(est),
                "--layers", "gpu")
    assert [(p["phase"], p["label"]) for p in r["phases"]] == [("pretraining", "estimated (TDP)"),
                                                               ("finetuning", "estimated (TDP)")]
    assert r["phases"][0]["emissions_kg"] == pytest.approx(39498, rel=0.01)      # the IDEFICS card's figure
    assert r["phases"][1]["emissions_kg"] == pytest.approx(3174, rel=0.01)
    assert r["data_quality"]["energy"]["estimated"] == pytest.approx(1.0)
    assert r["whatif"]["options"] == []                                          # no measured hours to move


def test_gaps_and_silent_jobs_are_reported(tmp_path, capsys):
    """A 40-minute hole in one GPU's samples and a ledger job that never reported: both in data quality."""
    db_path, cfg = reportkit.build(tmp_path)
    from wattprint.pipeline import db
    from wattprint.pipeline.model import build
    from wattprint.pipeline.settings import load_settings

    con = db.connect(db_path)
    sid = con.execute("SELECT series_id FROM series WHERE kind = 'job_energy' AND job_id = 'p1' AND gpu = '0'"
                      ).fetchall()[0][0]
    con.execute("DELETE FROM samples WHERE series_id = ? AND ts > ? AND ts < ?",
                [sid, reportkit.T0 + timedelta(minutes=600), reportkit.T0 + timedelta(minutes=640)])
    con.execute("INSERT INTO jobs (cluster, job_id, project, phase, start_ts, end_ts, source, origin)"
                " VALUES ('jean-zay', 'ghost', 'idefics', 'pretraining', ?, ?, 'test', 'test')",
                [reportkit.T0 + timedelta(hours=5), reportkit.T0 + timedelta(hours=6)])
    build(con, load_settings(str(cfg)).build_settings())
    con.close()
    r = as_json((db_path, cfg), capsys, "--project", "idefics", "--month", "2024-03")
    dq = r["data_quality"]
    assert dq["gaps"]["count"] == 1 and dq["gaps"]["hours"] == pytest.approx(40 / 60)
    assert dq["energy"]["counter_across_gap"] > 0          # the counter's energy across the hole is kept
    assert dq["jobs_without_telemetry"] == 1 and dq["poor"]
    assert any("telemetry gaps" in w for w in dq["warnings"])
    assert any("no measured energy" in w for w in dq["warnings"])
    truth = reportkit.truth()
    pre = next(p for p in r["phases"] if p["phase"] == "pretraining")
    assert pre["energy_kwh"] == pytest.approx(truth.energy_j[("idefics", "pretraining")] / 3.6e6, rel=1e-9)


def test_markdown_and_html_name_every_quality_share_alike(fleet, capsys):  # type: ignore[no-untyped-def]
    """One data-quality vocabulary (report/vocabulary.py): every share of the report is called the same in the
    Markdown and the HTML, and no renderer prints a raw key such as `nearest_hour`."""
    from html import unescape

    from wattprint.pipeline.report.vocabulary import ENERGY_QUALITY, INTENSITY_QUALITY

    outputs = {}
    for fmt in ("md", "html"):
        code, text, err = report(fleet, capsys, "--month", "2024-03", "--format", fmt)
        assert code == 0, err
        outputs[fmt] = unescape(text)
    for _, label in ENERGY_QUALITY + CPU_ENERGY_QUALITY + INTENSITY_QUALITY:
        for fmt, text in outputs.items():
            assert label in text, (fmt, label)
    assert "| nearest hour |" not in outputs["md"] and "| monthly mean |" not in outputs["md"]
