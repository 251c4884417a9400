"""The reports' held-but-idle section and the equal-share fallback of their data quality.

On the known fleet of tests/reportkit.py (jobs e2 and p1 held their GPUs idle for a while: HELD_IDLE), every figure is
recomputed from the generator's parameters alone; on the shared GPU of tests/test_model_held_idle.py (J1 and J2 split
equally for 30 minutes), the equal-share GPU-hours. Held-idle energy is a part of the GPU energy: the reports' other
numbers are the same with or without it (docs/examples are compared byte for byte by test_report_examples.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests import reportkit
from tests.test_model import settings as model_settings
from tests.test_model_held_idle import _write
from wattprint.pipeline import db
from wattprint.pipeline.cli import main
from wattprint.pipeline.config import Config
from wattprint.pipeline.model import build
from wattprint.pipeline.report import markdown, tables
from wattprint.pipeline.report.compute import build_report
from wattprint.pipeline.report.html import render as html
from wattprint.pipeline.report.scope import ReportOptions
from wattprint.pipeline.report.types import Report
from wattprint.pipeline.report.window import Window
from wattprint.pipeline.settings import Settings


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):  # type: ignore[no-untyped-def]
    return reportkit.build(tmp_path_factory.mktemp("held-report"))


def _json(fleet, capsys, *args: str) -> dict:  # type: ignore[no-untyped-def]
    db_path, cfg = fleet
    code = main(["report", "--db", str(db_path), "--config", str(cfg), "--month", "2024-03", *args,
                 "--format", "json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def _expected(with_pue: bool = True) -> dict[str, tuple[float, float, float, int]]:
    """job -> (held-idle kWh, kg CO2eq, GPU-hours, GPUs), from reportkit's parameters."""
    out = {}
    for j in reportkit.JOBS:
        if j.job_id not in reportkit.HELD_IDLE:
            continue
        a, b = reportkit.HELD_IDLE[j.job_id]
        kwh = kg = 0.0
        for m in range(a, b):                       # minute by minute: each in its UTC hour's intensity
            e_kwh = len(j.gpus) * j.watts * 60 / 3.6e6
            g, _ = reportkit.resolved_intensity(reportkit.ZONE[j.cluster], m // 60)
            kwh += e_kwh
            kg += e_kwh * g * (reportkit.PUE[j.cluster] if with_pue else 1.0) / 1000.0
        out[j.job_id] = (kwh, kg, len(j.gpus) * (b - a) / 60.0, len(j.gpus))
    return out


def test_fleet_report_shows_held_idle_energy_and_top_jobs(fleet, capsys) -> None:  # type: ignore[no-untyped-def]
    r = _json(fleet, capsys)
    h, want = r["held_idle"], _expected()
    assert h["energy_kwh"] == pytest.approx(sum(w[0] for w in want.values()), rel=1e-9)
    assert h["emissions_kg"] == pytest.approx(sum(w[1] for w in want.values()), rel=1e-9)
    assert h["gpu_hours"] == pytest.approx(sum(w[2] for w in want.values()), rel=1e-9)
    assert h["jobs"] == len(want)
    gpu_kwh = r["reconciliation"]["projects_energy_kwh"] + r["reconciliation"]["not_in_ledger_kwh"]
    assert h["gpu_energy_share"] == pytest.approx(h["energy_kwh"] / gpu_kwh, rel=1e-9)
    # the most held-idle energy first, each with its share of its own GPU energy
    assert [j["job_id"] for j in h["top_jobs"]] == sorted(want, key=lambda k: -want[k][0])
    for j in h["top_jobs"]:
        kwh, kg, hours, gpus = want[j["job_id"]]
        assert (j["energy_kwh"], j["emissions_kg"], j["gpu_hours"], j["gpus"]) == (
            pytest.approx(kwh, rel=1e-9), pytest.approx(kg, rel=1e-9), pytest.approx(hours, rel=1e-9), gpus)
        job = next(x for x in reportkit.JOBS if x.job_id == j["job_id"])
        own_kwh = len(job.gpus) * job.watts * (job.end_min - job.start_min) * 60 / 3.6e6
        assert j["gpu_energy_share"] == pytest.approx(kwh / own_kwh, rel=1e-9)
        assert (j["project"], j["phase"], j["user"]) == (job.project, job.phase, "alice")


def test_project_and_phase_scopes_and_pue_follow_the_headline(fleet, capsys) -> None:  # type: ignore[no-untyped-def]
    want = _expected(with_pue=False)
    r = _json(fleet, capsys, "--project", "idefics", "--phase", "experimentation", "--layers", "gpu,idle")
    assert [j["job_id"] for j in r["held_idle"]["top_jobs"]] == ["e2"]
    assert r["held_idle"]["emissions_kg"] == pytest.approx(want["e2"][1], rel=1e-9)
    assert _json(fleet, capsys, "--project", "bloom-mini")["held_idle"]["energy_kwh"] == 0.0
    assert _json(fleet, capsys, "--top-jobs", "1")["held_idle"]["top_jobs"][0]["job_id"] == "p1"


def test_held_idle_changes_no_other_number(fleet, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same fleet without the held-idle series: every other key of the report is the same."""
    with_series = _json(fleet, capsys)
    db_path, cfg = fleet
    con = db.connect(db_path, read_only=True)
    try:
        n = con.execute("SELECT count(*) FROM series WHERE kind LIKE 'job_held_idle_%'").fetchall()[0][0]
    finally:
        con.close()
    assert n > 0
    copy = tmp_path / "without.duckdb"
    copy.write_bytes(Path(db_path).read_bytes())
    con = db.connect(copy)
    con.execute("DELETE FROM samples WHERE series_id IN (SELECT series_id FROM series"
                " WHERE kind LIKE 'job_held_idle_%')")
    con.execute("DELETE FROM series WHERE kind LIKE 'job_held_idle_%'")
    con.close()
    assert main(["build", "--db", str(copy), "--config", str(cfg), "-q"]) == 0
    capsys.readouterr()
    without = _json((copy, cfg), capsys)
    assert without["held_idle"]["energy_kwh"] == 0.0 and without["held_idle"]["top_jobs"] == []
    for key in with_series:
        if key not in ("held_idle", "generated_at"):
            assert with_series[key] == without[key], key


def test_equal_share_gpu_hours_in_the_data_quality(tmp_path) -> None:
    con = db.connect(tmp_path / "w.duckdb")
    _write(con)
    build(con, model_settings())
    try:
        o = ReportOptions(window=Window(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 1, 2, tzinfo=UTC)))
        r = build_report(con, Settings(Config(), None), o)
    finally:
        con.close()
    e = r.data_quality.equal_share
    assert e is not None
    # J1 and J2 each held the GPU split equally for 30 minutes; both held it in hour 1 (J1: 30 min, J2: 30 min)
    assert e.gpu_hours == pytest.approx(1.0)
    assert e.shared_gpu_hours == pytest.approx(1.0)
    assert e.share == pytest.approx(1.0)
    # held idle: J1 00:40-00:50 and 01:10-01:20, J2 01:10-01:20
    assert r.held_idle is not None and r.held_idle.gpu_hours == pytest.approx(3 * 600 / 3600)
    text = markdown.render(r)
    assert "Equal-share fallback (a shared GPU split equally, without per-process utilisation): 1.0 GPU-hours" in text
    assert "## Held but idle GPUs" in text
    assert any(row[0] == "data_quality" and row[2] == "equal_share.gpu_hours" for row in tables.rows(r))


def test_names_in_the_section_are_escaped() -> None:
    hostile = "<script>alert(1)</script>|*x*"
    base = Report.from_dict({"kind": "fleet", "title": "t", "held_idle": {
        "energy_kwh": 1.0, "emissions_kg": 0.5, "gpu_energy_share": 0.1, "gpu_hours": 2.0, "jobs": 1,
        "top_jobs": [{"cluster": hostile, "job_id": hostile, "project": hostile, "phase": "p", "user": hostile,
                      "gpus": 1, "gpu_hours": 2.0, "energy_kwh": 1.0, "emissions_kg": 0.5,
                      "gpu_energy_share": 0.2}]}})
    page = html(base)
    assert "<script>" not in page and "&lt;script&gt;" in page
    md = markdown.render(base)
    assert "<script>" not in md and "\\|" in md
