"""`wattprint demo`: the month-long report demo, run as a newcomer runs it (a subprocess, no GPU, no server).

Three runs are shared by the tests: the default (./wattprint-demo/ under the working directory, seed 0), the
same seed again into another folder, and seed 1 into a folder a previous demo left (with a user's file in it).
The numbers are checked against the counters the demo stored and against the generator itself, not against
the reports' own arithmetic.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from jsonschema import Draft202012Validator

from tests import browser
from tests.conftest import REPO, require_tool
from wattprint.pipeline.demo import MARKER, DemoFiles
from wattprint.pipeline.demo_fleet import HEADLINE_PROJECT, MONTH, NO_RAPL_HOST, generate
from wattprint.pipeline.demo_moer import ZONE as MOER_ZONE
from wattprint.pipeline.demo_moer import moer_points
from wattprint.pipeline.report.html import fmt

SCHEMA = json.loads((REPO / "wattprint" / "pipeline" / "report" / "report-v1.schema.json").read_text(encoding="utf-8"))


@dataclass
class Run:
    files: DemoFiles
    proc: subprocess.CompletedProcess[str]
    wall_s: float

    def json(self, scope: str) -> dict[str, Any]:
        return json.loads(self.files.report(scope, "json").read_text(encoding="utf-8"))


def _demo(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("WATTPRINT_DB", None)
    env.pop("WATTPRINT_CONFIG", None)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", "demo", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    return proc, time.perf_counter() - t


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    root = tmp_path_factory.mktemp("demo")
    out: dict[str, Run] = {}
    proc, wall = _demo(root)                                   # the default folder, as `make demo` runs it
    out["default"] = Run(DemoFiles(root / "wattprint-demo", HEADLINE_PROJECT, MONTH), proc, wall)
    proc, wall = _demo(root, "--out", "again", "--seed", "0")
    out["again"] = Run(DemoFiles(root / "again", HEADLINE_PROJECT, MONTH), proc, wall)
    reused = root / "reused"                                   # a folder an earlier demo wrote, plus a user's file
    reused.mkdir()
    (reused / MARKER).write_text("x", encoding="utf-8")
    (reused / "keep.txt").write_text("mine", encoding="utf-8")
    (reused / f"report-all-{MONTH}.md").write_text("stale", encoding="utf-8")
    (reused / "MODEL_CARD.md").write_text("---\nco2_eq_emissions:\n  emissions: 1\n---\nstale body\n",
                                          encoding="utf-8")
    proc, wall = _demo(root, "--out", str(reused), "--seed", "1")
    out["seed1"] = Run(DemoFiles(reused, HEADLINE_PROJECT, MONTH), proc, wall)
    for name, r in out.items():
        print(f"wattprint demo ({name}): {r.wall_s:.1f} s wall")
    return out


def test_every_run_succeeds_and_writes_every_file(runs: dict[str, Run], record_property: Any) -> None:
    for name, r in runs.items():
        record_property(f"demo_wall_s_{name}", round(r.wall_s, 2))
        assert r.proc.returncode == 0, (name, r.proc.stderr[-3000:])
        assert "Traceback" not in r.proc.stderr
        for path, _ in r.files.listing():
            assert path.is_file() and path.stat().st_size > 0, (name, path)


def test_prints_the_model_card_section_and_where_the_files_are(runs: dict[str, Run]) -> None:
    r = runs["default"]
    md = r.files.report(HEADLINE_PROJECT, "md").read_text(encoding="utf-8")
    section = md[md.index("## Environmental Impact"):md.index("\nMethod: ")].rstrip()
    assert section in r.proc.stdout
    for phase in ("experimentation", "pretraining", "finetuning"):
        assert f"*{HEADLINE_PROJECT} {phase}*" in r.proc.stdout
    assert f"Files in wattprint-demo{os.sep} ({r.files.out.resolve()})" in r.proc.stdout
    for path, _ in r.files.listing():
        assert f"  {path.name}  " in r.proc.stdout
    assert "done in" in r.proc.stdout


def test_reports_validate_against_the_json_schema(runs: dict[str, Run]) -> None:
    validator = Draft202012Validator(SCHEMA)
    for scope in (HEADLINE_PROJECT, "all"):
        errors = sorted(validator.iter_errors(runs["default"].json(scope)), key=lambda e: list(e.path))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def test_project_report_has_three_phases_on_two_clusters_fully_measured_and_hourly(runs: dict[str, Run]) -> None:
    rep = runs["default"].json(HEADLINE_PROJECT)
    assert rep["kind"] == "project" and rep["project"] == HEADLINE_PROJECT
    assert [p["phase"] for p in rep["phases"]] == ["experimentation", "pretraining", "finetuning"]
    assert all(p["label"] == "measured" for p in rep["phases"])
    assert {c["cluster"] for p in rep["phases"] for c in p["clusters"]} == {"jean-zay", "aws-usw2"}
    dq = rep["data_quality"]
    assert dq["energy"]["counter"] == pytest.approx(1.0, abs=1e-12)
    assert dq["intensity"]["hourly"] == pytest.approx(1.0, abs=1e-12)
    # the one warning: the node whose RAPL the exporter could not read (the demo's data-quality case)
    assert len(dq["warnings"]) == 1 and "RAPL" in dq["warnings"][0] and NO_RAPL_HOST in dq["warnings"][0]
    assert dq["poor"] is False
    assert dq["gaps"]["count"] == 0 and dq["jobs_without_telemetry"] == 0
    assert rep["total"]["hardware"] == [{"model": "NVIDIA H100 80GB HBM3", "gpus": rep["total"]["hardware"][0]["gpus"],
                                         "measured": True}]
    # what-if: the project ran on both clusters, so neither option equals the actual figure; FR is cheaper
    assert rep["whatif"]["best"]["cluster"] == "jean-zay"
    assert rep["whatif"]["saving_kg"] > 0


def test_fleet_reconciliation_adds_up_to_the_fleet_energy(runs: dict[str, Run]) -> None:
    rep = runs["default"].json("all")
    r = rep["reconciliation"]
    parts = r["projects_energy_kwh"] + r["not_in_ledger_kwh"] + r["idle_apportioned_kwh"] + r["idle_unapportioned_kwh"]
    assert parts == pytest.approx(r["fleet_energy_kwh"], rel=1e-9)
    assert sum(c["energy_kwh"] for c in rep["clusters"]) == pytest.approx(r["fleet_energy_kwh"], rel=1e-9)
    assert r["not_in_ledger_kwh"] > 0                           # the debugging session nobody put in the ledger
    assert {p["project"] for p in rep["projects"]} == {"idefics-mini", "bloom-tiny", "llm-eval",
                                                       "(not in the job ledger)"}
    phases = {ph["phase"] for p in rep["projects"] for ph in p["phases"]}
    assert {"experimentation", "pretraining", "finetuning"} <= phases


GPU_KINDS = "se.kind IN ('job_energy', 'idle_energy')"      # the exporter's split; 'gpu_energy' is their total
HOST_KINDS = "se.kind IN ('job_cpu_energy', 'cpu_idle_energy')"


def _increases(db: Path, where: str = GPU_KINDS) -> float:
    """Sum over stored counter series of (last value - first value), straight from the samples table."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        (j,) = con.execute(
            "SELECT sum(last - first) FROM (SELECT s.series_id, arg_max(s.value, s.ts) AS last,"
            " arg_min(s.value, s.ts) AS first FROM samples s JOIN series se USING (series_id)"
            f" WHERE {where} GROUP BY 1)").fetchall()[0]
    finally:
        con.close()
    return float(j)


def test_total_energy_is_the_sum_of_the_generated_counters(runs: dict[str, Run]) -> None:
    files = runs["default"].files
    fleet_kwh = runs["default"].json("all")["reconciliation"]["fleet_energy_kwh"]
    stored_j = _increases(files.db)
    generated_j = generate(0).energy_j                          # the generator's own counters, no database
    assert stored_j == pytest.approx(generated_j, rel=1e-9)
    assert _increases(files.db, "se.kind = 'gpu_energy'") == pytest.approx(generated_j, rel=1e-9)
    assert fleet_kwh * 3.6e6 == pytest.approx(stored_j, rel=1e-9)
    # the project's energy is its own jobs' counters (the job ids come from the ledger CSV)
    ledger = [line.split(",") for line in files.jobs.read_text(encoding="utf-8").splitlines()[1:]]
    ids = sorted({row[0] for row in ledger if row[1] == HEADLINE_PROJECT})
    project_j = _increases(files.db, "se.kind = 'job_energy' AND se.job_id IN (" + ",".join(f"'{i}'" for i in ids)
                           + ")")
    rep = runs["default"].json(HEADLINE_PROJECT)
    assert sum(p["energy_kwh"] for p in rep["phases"]) * 3.6e6 == pytest.approx(project_j, rel=1e-9)
    assert rep["total"]["energy_kwh"] * 3.6e6 == pytest.approx(project_j, rel=1e-9)


def test_host_energy_and_cpu_time_are_the_generated_counters(runs: dict[str, Run]) -> None:
    files = runs["default"].files
    host = generate(0).host
    stored_j = _increases(files.db, HOST_KINDS)
    assert stored_j == host.energy_j == sum(host.socket_j.values())      # whole joules: exact
    con = duckdb.connect(str(files.db), read_only=True)
    try:
        (fct_j,) = con.execute("SELECT sum(energy_j) FROM fct_job_cpu_hour").fetchall()[0]
        (fct_s,) = con.execute("SELECT sum(cpu_seconds) FROM fct_job_cpu_time_hour").fetchall()[0]
        rapl = con.execute("SELECT hostname, sum(samples), sum(readable_samples) FROM node_rapl_hour"
                           " GROUP BY 1 ORDER BY 1").fetchall()
        hosts = {h for (h,) in con.execute("SELECT DISTINCT hostname FROM fct_job_cpu_hour").fetchall()}
    finally:
        con.close()
    assert fct_j == pytest.approx(stored_j, rel=1e-9)
    assert fct_s == pytest.approx(sum(a[-1] for a in host.cpu_seconds.values()), rel=1e-9)
    # every step of the month (its end included) on every host: readable, except where the exporter cannot read it
    assert {h: (n, r) for h, n, r in rapl} == {h.name: (44641, 0 if h.name == NO_RAPL_HOST else 44641)
                                               for h in host.hosts}
    assert hosts == {h.name for h in host.hosts} - {NO_RAPL_HOST}


def test_the_node_layer_is_the_bmc_energy_less_gpus_and_rapl_listed_beside_the_headline(runs: dict[str, Run]) -> None:
    """demo_node.py: jzxh101's BMC through the exporter's counter, jzxh102's through ipmi_exporter (with a 3-hour
    glitch below its GPUs), none on AWS. Per node-hour the identity is exact; the layer is listed, not in the
    headline (the demo keeps the default layers), and its data quality names the glitch's hours."""
    from wattprint.pipeline.demo_node import GLITCH_HOURS, GLITCH_START, bmc_watts

    files = runs["default"].files
    con = duckdb.connect(str(files.db), read_only=True)
    try:
        (off,) = con.execute("SELECT count(*) FROM fct_node_hour WHERE node_j IS NOT NULL"
                             " AND gpu_j + rapl_j + residual_j <> node_j").fetchall()[0]
        per_node = dict(con.execute("SELECT node, sum(node_j) FROM fct_node_hour GROUP BY 1").fetchall())
        kinds = dict(con.execute("SELECT node, any_value(reading_kind) FROM fct_node_hour WHERE node_j IS NOT NULL"
                                 " GROUP BY 1").fetchall())
    finally:
        con.close()
    assert off == 0
    assert kinds == {"jzxh101": "counter", "jzxh102": "power"}
    fleet = generate(0)
    # the counter's increase over the month, exactly; the gauge integrated by the trapezoid rule, within a joule a
    # minute of the readings' rounding to whole watts
    assert float(per_node["jzxh101"]) == pytest.approx(sum(w * 60 for w in bmc_watts(fleet, "jzxh101")), rel=1e-9)
    assert float(per_node["jzxh102"]) == pytest.approx(sum(w * 60 for w in bmc_watts(fleet, "jzxh102")), rel=1e-3)
    assert per_node["ip-10-42-1-17"] is None and per_node["ip-10-42-1-18"] is None
    for scope in (HEADLINE_PROJECT, "all"):
        rep = runs["default"].json(scope)
        node = next(r for r in rep["layers"] if r["layer"] == "node")
        assert not node["included"] and node["energy_kwh"] > 0
        assert "node" not in rep["method"]["layers_selected"]
    dq = runs["default"].json("all")["data_quality"]["node"]
    assert (dq["nodes"], dq["nodes_with_bmc"], dq["hours_without_bmc"]) == (4, 2, 2 * 744)
    assert dq["deficit_hours"] == dq["below_gpu_hours"] == GLITCH_HOURS
    glitch = next(i for i in dq["issues"] if i["deficit_hours"])
    start = int(GLITCH_START // 60)
    assert glitch["hostname"] == "jzxh102" and glitch["deficit_at"] == [
        f"2026-10-{1 + (start + h) // 24:02d}T{(start + h) % 24:02d}:00:00Z" for h in range(GLITCH_HOURS)]
    assert dq["node_energy_kwh"] == pytest.approx(dq["gpu_energy_kwh"] + dq["rapl_energy_kwh"] + dq["residual_kwh"]
                                                  - dq["deficit_kwh"], rel=1e-9)


def test_the_same_seed_gives_identical_files_and_another_seed_does_not(runs: dict[str, Run]) -> None:
    a, b, c = runs["default"].files, runs["again"].files, runs["seed1"].files
    for path, _ in a.listing():
        if path.suffix == ".duckdb":
            continue
        other = b.out / path.name
        assert path.read_bytes() == other.read_bytes(), path.name
    for scope in (HEADLINE_PROJECT, "all"):
        assert a.report(scope, "json").read_text() != c.report(scope, "json").read_text()
    assert a.jobs.read_text() != c.jobs.read_text()
    assert a.intensity.read_text() != c.intensity.read_text()
    assert a.marginal.read_text() != c.marginal.read_text()


def test_marginal_section_prices_the_us_west_2_energy_with_the_generated_moer(runs: dict[str, Run]) -> None:
    """The WattTime-style series (demo_moer.py) went through the real parser into the marginal signal, hour by hour,
    and the reports show it beside the headline, never in it: the average intensity is still what priced every hour."""
    files = runs["default"].files
    pts = moer_points(0)
    con = duckdb.connect(str(files.db), read_only=True)
    try:
        hours = {h.replace(tzinfo=UTC): (g, c) for h, g, c in con.execute(
            "SELECT hour_ts, g_per_kwh, covered_s FROM marginal_hourly WHERE zone = ?", [MOER_ZONE]).fetchall()}
        assert con.execute("SELECT count(*) FROM intensity_hourly WHERE basis = 'marginal'").fetchall() == [(0,)]
    finally:
        con.close()
    by_hour: dict[datetime, list[float]] = {}
    for t, lbs, _ in pts:
        by_hour.setdefault(t.replace(minute=0), []).append(lbs * 0.45359237)
    assert set(hours) == set(by_hour) and len(hours) < 31 * 24          # the outage: partly and wholly missing hours
    for h, values in by_hour.items():
        assert hours[h] == (pytest.approx(sum(values) / len(values), rel=1e-12), len(values) * 300)
    for scope in (HEADLINE_PROJECT, "all"):
        rep = runs["default"].json(scope)
        m = rep["marginal"]
        t = m["total"]
        assert m["label"].startswith("marginal (consequential)") and t["sources"] == ["watttime"]
        assert 0.3 < t["covered_share"] < 0.95
        assert t["energy_kwh"] == pytest.approx(rep["scope2"]["total"]["energy_kwh"], rel=1e-12)
        clusters = {c["cluster"]: c for c in m["clusters"]}
        assert (clusters["jean-zay"]["zone"], clusters["jean-zay"]["covered_kwh"]) == ("FR", 0.0)
        assert clusters["aws-usw2"]["marginal_hours"] == len(hours)
        assert clusters["aws-usw2"]["covered_kwh"] == pytest.approx(t["covered_kwh"], rel=1e-12)
        # a marginal rate above the zone's average, within the generated series' range
        lo, hi = min(min(v) for v in by_hour.values()), max(max(v) for v in by_hour.values())
        assert lo <= t["marginal_g_per_kwh"] <= hi
        average = {c["cluster"]: c for c in rep["clusters"]}["aws-usw2"] if scope == "all" else None
        if average is not None:
            assert t["marginal_g_per_kwh"] > average["intensity_g_per_kwh"]
        assert "## Marginal emissions (consequential view)" in files.report(scope, "md").read_text(encoding="utf-8")


def test_demo_marginal_section_renders_in_chromium(runs: dict[str, Run], tmp_path: Path) -> None:
    chromium = require_tool("chromium")
    files = runs["default"].files
    page = files.report("all", "html")
    png = tmp_path / "demo-all.png"
    browser.screenshot(chromium, page, png, 1280, 4000)
    img = browser.decode_png(png.read_bytes())
    assert len(img.colours()) > 500
    dom = browser.dump_dom(chromium, page)
    start = dom.index('<section id="marginal">')
    section = dom[start:dom.index("</section>", start)].replace("&nbsp;", " ")
    text = " ".join(re.sub(r"<[^>]+>", " ", section).split())          # str.split: a no-break space is a space
    m = runs["default"].json("all")["marginal"]
    assert "Marginal (consequential) \u2014 not comparable with and not added to the location-based total." in text
    assert f"{fmt(m['total']['marginal_kg'])} kg CO\u2082eq at the marginal emission rate" in text
    for c in m["clusters"]:
        assert f"{c['cluster']} {c['zone']} {fmt(c['marginal_hours'], 'int')} {fmt(c['energy_kwh'])}" in text


def test_rerun_replaces_its_own_files_and_keeps_the_users(runs: dict[str, Run]) -> None:
    files = runs["seed1"].files
    assert (files.out / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert files.report("all", "md").read_text(encoding="utf-8").startswith("# Carbon report: all projects")
    assert "stale body" not in files.model_card.read_text(encoding="utf-8")


def test_model_card_front_matter_holds_the_headline_in_grams(runs: dict[str, Run]) -> None:
    for name in ("default", "seed1"):
        r = runs[name]
        text = r.files.model_card.read_text(encoding="utf-8")
        assert text.startswith("---\n")
        front = yaml.safe_load(text.split("---\n")[1])
        co2 = front["co2_eq_emissions"]
        kg = r.json(HEADLINE_PROJECT)["total"]["emissions_kg"]
        assert co2["emissions"] == pytest.approx(kg * 1000.0, abs=0.006)
        assert co2["training_type"] == "pre-training"
        assert co2["hardware_used"].endswith("x NVIDIA H100 80GB HBM3")
        assert "## Environmental Impact" in text
        # the pretraining jobs give tokens: the card states their SCI, from the report's pretraining row
        (row,) = [x for x in r.json(HEADLINE_PROJECT)["sci"]["rows"] if x["phase"] == "pretraining"]
        assert co2["sci_unit_name"] == row["unit_name"] == "tokens" and co2["sci_units"] == row["units"]
        assert co2["sci_g_per_million_units"] == float(f"{row['g_per_million_units']:.6g}") > 0
        assert co2["sci_g_per_unit"] == float(f"{row['g_per_unit']:.6g}")
        assert "Per functional unit (SCI, training): " in text.split("---\n", 2)[2]


def test_the_all_projects_report_gives_each_projects_sci(runs: dict[str, Run]) -> None:
    r = runs["default"]
    fleet = r.json("all")["sci"]["rows"]
    mine = [{k: v for k, v in x.items() if k != "project"} for x in fleet if x["project"] == HEADLINE_PROJECT]
    own = r.json(HEADLINE_PROJECT)["sci"]["rows"]
    assert [(x["phase"], x["unit_name"]) for x in mine] == [(x["phase"], x["unit_name"]) for x in own] != []
    for a, b in zip(mine, own, strict=True):
        assert a.keys() == b.keys()
        for k, v in b.items():
            assert a[k] == (pytest.approx(v, rel=1e-12) if isinstance(v, float) else v), k
    assert len({x["project"] for x in fleet}) > 1          # another project's pretraining gives tokens too


def test_a_folder_it_did_not_write_is_refused_and_left_alone(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("important", encoding="utf-8")
    proc, _ = _demo(tmp_path, "--out", str(mine))
    assert proc.returncode == 2
    assert "was not written by `wattprint demo`" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    proc, _ = _demo(tmp_path, "--out", str(afile))
    assert proc.returncode == 2 and "is not a folder" in proc.stderr
    assert afile.read_text(encoding="utf-8") == "x"
