"""`wattprint report` on a known fleet (tests/reportkit.py): every number against figures recomputed from the
generator's parameters, the formats against each other, and bad input."""

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

from pipeline import hardware
from pipeline.cli import main
from pipeline.report.fmt import num

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
        assert layers["idle"]["energy_kwh"] == pytest.approx(truth.idle_j[key] / 3.6e6, rel=REL, abs=1e-12)
        assert layers["idle"]["emissions_kg"] == pytest.approx(truth.idle_g[key] / 1000, rel=REL, abs=1e-12)
        assert layers["pue"]["emissions_kg"] == pytest.approx(truth.pue_g[key] / 1000, rel=REL)
        assert p["gpu_hours"] == pytest.approx(truth.gpu_s[key] / 3600, rel=REL)
        assert layers["embodied"]["emissions_kg"] == pytest.approx(truth.gpu_s[key] / 3600 * rate, rel=REL)
        # the default headline: gpu + idle share + PUE overhead, embodied beside it
        assert p["emissions_kg"] == pytest.approx((truth.gpu_g[key] + truth.idle_g[key] + truth.pue_g[key]) / 1000,
                                                  rel=REL)
        assert p["intensity_g_per_kwh"] == pytest.approx(truth.gpu_g[key] / (truth.energy_j[key] / 3.6e6), rel=REL)
    pre = r["phases"][1]
    assert pre["hardware"] == [{"model": reportkit.H100, "gpus": 4, "gpu_hours": pytest.approx(192.0)}]
    assert pre["wall_clock_hours"] == pytest.approx(48.0)           # 02:00 on day 1 to 02:00 on day 3
    assert pre["jobs"] == 1 and pre["clusters"][0]["provider"] == "aws"
    assert pre["clusters"][0]["zone"] == "aws:us-west-2"
    fine = r["phases"][2]
    assert {c["cluster"] for c in fine["clusters"]} == {"jean-zay", "aws-usw2"}
    assert fine["wall_clock_hours"] == pytest.approx((4000 - 3000) / 60)   # f1 and f2 overlap: the union
    total = sum((truth.gpu_g[k] + truth.idle_g[k] + truth.pue_g[k]) for k in truth.gpu_g if k[0] == "idefics")
    assert r["total"]["emissions_kg"] == pytest.approx(total / 1000, rel=REL)
    assert sum(x["emissions_kg"] for x in r["layers"] if x["included"]) == pytest.approx(r["total"]["emissions_kg"])
    assert r["method"]["layers_selected"] == ["gpu", "idle", "pue"]
    assert r["data_quality"]["energy"]["counter"] == pytest.approx(1.0)
    assert 0 < r["data_quality"]["intensity"]["nearest_hour"] < 0.1   # the two missing us-west-2 hours
    assert r["data_quality"]["warnings"] == [] and not r["data_quality"]["poor"]


def test_layers_flag_and_separate_idle_policy(fleet, truth, capsys):
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--layers", "all")
    assert r["method"]["layers_selected"] == ["gpu", "idle", "pue", "embodied"]
    assert r["total"]["emissions_kg"] == pytest.approx(sum(x["emissions_kg"] for x in r["layers"]))
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--layers", "gpu")
    gpu_only = sum(truth.gpu_g[k] for k in truth.gpu_g if k[0] == "idefics") / 1000
    assert r["total"]["emissions_kg"] == pytest.approx(gpu_only, rel=REL)
    r = as_json(fleet, capsys, "--project", "idefics", "--month", "2024-03", "--idle-policy", "separate")
    assert r["method"]["layers_selected"] == ["gpu", "pue"]
    assert all(p["layers"]["idle"]["energy_kwh"] == 0 for p in r["phases"])
    # PUE overhead then applies to the jobs' own energy only
    pue = {c: reportkit.PUE[c] for c in reportkit.PUE}
    assert r["total"]["emissions_kg"] > gpu_only and min(pue.values()) > 1


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
    assert projects["bloom-mini"]["emissions_kg"] == pytest.approx(
        (truth.gpu_g[bloom] + truth.idle_g[bloom] + truth.pue_g[bloom]) / 1000, rel=REL)
    assert r["top_jobs"][0]["job_id"] == "p1"
    assert [c["cluster"] for c in r["clusters"]] == ["aws-usw2", "jean-zay"]
    assert sum(c["energy_kwh"] for c in r["clusters"]) == pytest.approx(rc["fleet_energy_kwh"], rel=REL)
    assert r["previous"] is None and r["change"] is None                 # nothing stored for 2024-02
    # sum over projects of the headline = the fleet headline
    assert sum(p["emissions_kg"] for p in r["projects"]) == pytest.approx(r["total"]["emissions_kg"], rel=REL)


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
    # in France: the same hourly energy x FR intensity at those hours x jean-zay's PUE
    job = next(j for j in reportkit.JOBS if j.job_id == "p1")
    fr_g = 0.0
    for m in range(job.start_min, job.end_min, reportkit.STEP_MIN):
        e = job.watts * reportkit.STEP_MIN * 60 * len(job.gpus)
        fr_g += e / 3.6e6 * reportkit.intensity("FR", m // 60) * reportkit.PUE["jean-zay"]
    # + the idle share, which is 0 here (p1 holds all four GPUs whenever it runs)
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
        assert f"Energy: {num(p['energy_kwh'], 'kWh')}" in block
        assert p["hardware_text"] in block
    for x in r["layers"]:
        assert f"| {x['title']} | {num(x['energy_kwh'])} | {num(x['emissions_kg'])} |" in md
    assert f"**{num(r['total']['emissions_kg'])}**" in md
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
    n_numbers = len(re.findall(r'": -?[0-9]', json.dumps(r)))
    assert len(rows) == n_numbers           # one CSV row per number in the JSON


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
    assert "NVIDIA H100 80GB HBM3" in co2["hardware_used"]
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
    from pipeline import db
    from pipeline.model import build
    from pipeline.settings import load_settings

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

    from pipeline import db as dbmod

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
    from pipeline import db
    from pipeline.model import build
    from pipeline.settings import load_settings

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
