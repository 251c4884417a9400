"""The SCI per functional unit (report/sci.py, sci_card.py) on the known fleet of tests/reportkit.py, with units
written into a copy of its ledger: the project report's rows, the all-projects report's rows per project (the same
figures as each project's own report), and the training SCI of the model card (metadata and body). Expected figures
come from the generator's parameters (reportkit.truth()), not from SQL."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest
import yaml

from tests import reportkit
from wattprint.pipeline.cli import main as cli_main
from wattprint.pipeline.estimate import load_manual_phases
from wattprint.pipeline.report.compute import build_report
from wattprint.pipeline.report.markdown import render as markdown
from wattprint.pipeline.report.modelcard import DISCLOSURE_FIELDS, SCI_FIELDS, STANDARD_FIELDS, update_text
from wattprint.pipeline.report.run import co2_metadata, render
from wattprint.pipeline.report.scope import ReportOptions
from wattprint.pipeline.report.types import NOT_IN_LEDGER, Report
from wattprint.pipeline.report.window import month
from wattprint.pipeline.settings import load_settings

TRUTH = reportkit.truth()


def _report(fleet, **kw) -> Report:
    path, cfg = fleet
    con = duckdb.connect(str(path), read_only=True)
    try:
        o = ReportOptions(window=month("2024-03"), generated_at=datetime(2024, 4, 1), time_shift_slack_hours=0, **kw)
        return build_report(con, load_settings(str(cfg)), o)
    finally:
        con.close()


def _kwh(project: str | None, phase: str) -> float:
    return TRUTH.energy_j[(project, phase)] / 3.6e6


def _with_units(fleet, tmp_path, units: dict[str, tuple[float, str]], name: str = "units.duckdb"):
    """A copy of the known fleet whose ledger gives these jobs units."""
    path, cfg = fleet
    copy = tmp_path / name
    copy.write_bytes(path.read_bytes())
    con = duckdb.connect(str(copy))
    con.executemany("UPDATE jobs SET units = ?, unit_name = ? WHERE job_id = ?",
                    [[u, n, jid] for jid, (u, n) in units.items()])
    con.close()
    return copy, cfg


# -- the project report ---------------------------------------------------------------------------------------------

UNITS = {"p1": (4e9, "tokens"), "e1": (1e9, "tokens"), "f1": (1000.0, "samples"), "b1": (2e9, "tokens")}


@pytest.fixture
def units_fleet(report_fleet, tmp_path):
    """p1, e1 (idefics) and b1 (bloom-mini) give tokens, f1 samples (f2 and e2: none)."""
    return _with_units(report_fleet, tmp_path, UNITS)


def _job(job_id: str) -> reportkit.Job:
    (j,) = [j for j in reportkit.JOBS if j.job_id == job_id]
    return j


def _job_j(job_id: str) -> float:
    """A job's GPU energy from the generator's parameters: watts x minutes x GPUs."""
    j = _job(job_id)
    return j.watts * (j.end_min - j.start_min) * 60 * len(j.gpus)


def test_sci_is_the_jobs_emissions_with_embodied_over_their_units(units_fleet) -> None:
    r = _report(units_fleet, project="idefics", layers=("gpu",))
    c = r.sci
    assert c is not None and c.embodied_in_headline is False
    rows = {(x.phase, x.unit_name): x for x in c.rows}
    assert list(rows) == [("experimentation", "tokens"), ("pretraining", "tokens"), ("finetuning", "samples"),
                          ("all", "tokens")]
    p = rows[("pretraining", "tokens")]
    # p1 is idefics' only pretraining job: E x I is the phase's GPU emissions, M its GPUs' embodied emissions
    (block,) = [b for b in r.phases if b.phase == "pretraining"]
    embodied_g = block.layers.embodied.emissions_kg * 1000
    assert embodied_g > 0
    assert (p.units, p.jobs) == (4e9, 1)
    assert p.operational_g == pytest.approx(TRUTH.gpu_g[("idefics", "pretraining")], rel=1e-9)
    assert p.embodied_g == pytest.approx(embodied_g, rel=1e-9)
    want = (TRUTH.gpu_g[("idefics", "pretraining")] + embodied_g) / 4e9
    assert p.g_per_unit == pytest.approx(want, rel=1e-9)
    assert p.g_per_thousand_units == pytest.approx(want * 1e3, rel=1e-9)
    assert p.g_per_million_units == pytest.approx(want * 1e6, rel=1e-9)
    assert p.energy_share == pytest.approx(1.0) and p.energy_kwh == pytest.approx(_kwh("idefics", "pretraining"))
    # finetuning: f1 carries samples, f2 none: f1's energy share of the phase, f2 in neither numerator nor R
    f = rows[("finetuning", "samples")]
    assert f.jobs == 1 and f.units == 1000
    assert f.energy_kwh == pytest.approx(_job_j("f1") / 3.6e6, rel=1e-9)
    assert f.energy_share == pytest.approx(_job_j("f1") / TRUTH.energy_j[("idefics", "finetuning")], rel=1e-9)
    assert 0 < f.energy_share < 1
    # all: tokens of experimentation (e1 only) and pretraining together
    a, e = rows[("all", "tokens")], rows[("experimentation", "tokens")]
    assert (a.units, a.jobs) == (5e9, 2)
    assert e.energy_kwh == pytest.approx(_job_j("e1") / 3.6e6, rel=1e-9)
    assert a.sci_g == pytest.approx(p.sci_g + e.sci_g, rel=1e-12)
    assert a.g_per_unit == pytest.approx((p.sci_g + e.sci_g) / 5e9, rel=1e-12)
    assert a.energy_share == pytest.approx((p.energy_kwh + e.energy_kwh) / r.total.facility_energy_kwh, rel=1e-9)


def test_sci_operational_part_follows_the_headline_layers(units_fleet) -> None:
    """Every layer: E x I is the headline's operational emissions of p1 (gpu, cpu, idle share, PUE), and with the
    embodied layer in the headline, E x I + M is the headline itself."""
    r = _report(units_fleet, project="idefics", phases=("pretraining",), layers=("gpu", "cpu", "idle", "pue",
                                                                                  "embodied"))
    (p,) = r.sci.rows if r.sci else ()
    assert r.sci is not None and r.sci.embodied_in_headline is True
    assert p.operational_g == pytest.approx(TRUTH.headline_g(("idefics", "pretraining")), rel=1e-9)
    assert p.sci_g == pytest.approx(r.total.emissions_kg * 1000, rel=1e-9)   # the headline includes M here


def test_sci_counts_a_job_crossing_the_window_pro_rata(units_fleet) -> None:
    """A window that holds part of p1's run: its units count for that part, as its energy does."""
    from wattprint.pipeline.report.window import resolve

    j = _job("p1")
    start = reportkit.T0 + timedelta(hours=10)          # p1 runs from minute 120 to 3000
    w = resolve(None, start.isoformat(), (reportkit.T0 + timedelta(hours=100)).isoformat())
    path, cfg = units_fleet
    con = duckdb.connect(str(path), read_only=True)
    try:
        o = ReportOptions(window=w, generated_at=datetime(2024, 4, 1), time_shift_slack_hours=0, project="idefics",
                          phases=("pretraining",), layers=("gpu",))
        r = build_report(con, load_settings(str(cfg)), o)
    finally:
        con.close()
    (p,) = r.sci.rows if r.sci else ()
    assert p.units == pytest.approx(4e9 * (j.end_min - 600) / (j.end_min - j.start_min), rel=1e-12)


def test_sci_says_none_without_units_and_renders_everywhere(report_fleet, units_fleet) -> None:
    plain = _report(report_fleet, project="idefics")
    assert plain.sci is not None and plain.sci.rows == ()
    assert "No job of this report carries functional units" in render(plain, "md")
    fleet = _report(report_fleet).sci                        # the all-projects report: per project, none here
    assert fleet is not None and fleet.rows == ()
    assert "## SCI: emissions per functional unit, per project" in render(_report(report_fleet), "md")
    r = _report(units_fleet, project="idefics")
    md = render(r, "md")
    assert "## SCI: emissions per functional unit" in md and "| pretraining | tokens | 4,000,000,000 |" in md
    assert '<section id="sci">' in render(r, "html")
    assert "\nsci,pretraining/tokens,rows.g_per_unit," in render(r, "csv")
    assert Report.from_dict(r.to_dict()) == r


def test_sci_two_unit_names_in_one_phase_give_one_row_each(report_fleet, tmp_path) -> None:
    two = _with_units(report_fleet, tmp_path, {"f1": (1000.0, "samples"), "f2": (50.0, "images")})
    r = _report(two, project="idefics", phases=("finetuning",), layers=("gpu",))
    assert r.sci is not None
    rows = {x.unit_name: x for x in r.sci.rows}
    assert [(x.phase, x.unit_name) for x in r.sci.rows] == [("finetuning", "images"), ("finetuning", "samples")]
    whole = TRUTH.energy_j[("idefics", "finetuning")]
    assert rows["samples"].energy_share == pytest.approx(_job_j("f1") / whole, rel=1e-9)
    assert rows["images"].energy_share == pytest.approx(_job_j("f2") / whole, rel=1e-9)
    assert rows["images"].units == 50 and rows["images"].jobs == 1
    assert rows["samples"].sci_g + rows["images"].sci_g == pytest.approx(
        TRUTH.gpu_g[("idefics", "finetuning")] + r.phases[0].layers.embodied.emissions_kg * 1000, rel=1e-9)


# -- the all-projects report: per project ---------------------------------------------------------------------------

def _same_row(fleet_row, project_row) -> None:
    """A fleet row is the project report's row with its project named: every figure the same."""
    assert (fleet_row.phase, fleet_row.unit_name, fleet_row.jobs) == (project_row.phase, project_row.unit_name,
                                                                      project_row.jobs)
    for name in ("units", "energy_kwh", "energy_share", "operational_g", "embodied_g", "sci_g", "g_per_unit",
                 "g_per_thousand_units", "g_per_million_units"):
        assert getattr(fleet_row, name) == pytest.approx(getattr(project_row, name), rel=1e-12), name


@pytest.mark.parametrize("layers", [("gpu",), ("gpu", "cpu", "idle", "pue"), ("gpu", "embodied")])
def test_fleet_sci_is_each_projects_own_sci(units_fleet, layers) -> None:
    fleet = _report(units_fleet, layers=layers)
    c = fleet.sci
    assert c is not None and fleet.kind == "fleet"
    assert c.embodied_in_headline is ("embodied" in layers)
    # projects in name order, each with its phases in phase order, then its `all` rows; never a row across projects
    assert [(x.project, x.phase, x.unit_name) for x in c.rows] == [
        ("bloom-mini", "pretraining", "tokens"),
        ("idefics", "experimentation", "tokens"), ("idefics", "pretraining", "tokens"),
        ("idefics", "finetuning", "samples"), ("idefics", "all", "tokens")]
    assert NOT_IN_LEDGER not in {x.project for x in c.rows}
    idefics = _report(units_fleet, project="idefics", layers=layers).sci
    assert idefics is not None
    mine = [x for x in c.rows if x.project == "idefics"]
    assert len(mine) == len(idefics.rows)
    for f, p in zip(mine, idefics.rows, strict=True):
        assert p.project is None
        _same_row(f, p)
    (bloom,) = [x for x in c.rows if x.project == "bloom-mini"]
    (own,) = _report(units_fleet, project="bloom-mini", layers=layers).sci.rows
    _same_row(bloom, own)
    # the `all` row adds idefics' tokens only: 5e9, not bloom-mini's 2e9 too
    (a,) = [x for x in c.rows if x.phase == "all"]
    assert (a.units, a.jobs) == (5e9, 2)
    assert "no row adds projects together" in c.method
    assert c.method.startswith(idefics.method)      # the project report's sentence, then the per-project one


def test_fleet_sci_by_hand_for_bloom_mini(units_fleet) -> None:
    """b1 is bloom-mini's only job: its whole pretraining phase, 2e9 tokens, on jean-zay's A100."""
    r = _report(units_fleet, layers=("gpu",))
    (b,) = [x for x in r.sci.rows if x.project == "bloom-mini"]
    key = ("bloom-mini", "pretraining")
    assert (b.units, b.jobs, b.energy_share) == (2e9, 1, 1.0)
    assert b.energy_kwh == pytest.approx(_kwh(*key), rel=1e-9)
    assert b.operational_g == pytest.approx(TRUTH.gpu_g[key], rel=1e-9)
    rate = r.method.embodied.rates
    (a100,) = [x for x in rate if x.model == reportkit.A100 and x.cluster == "jean-zay"]
    assert b.embodied_g == pytest.approx(TRUTH.gpu_s[key] / 3600 * a100.kg_per_gpu_hour * 1000, rel=1e-9)
    assert b.g_per_unit == pytest.approx((TRUTH.gpu_g[key] + b.embodied_g) / 2e9, rel=1e-12)


def test_fleet_sci_shares_count_a_projects_manual_phase(units_fleet, tmp_path) -> None:
    """A dated manual pretraining phase of idefics (1,000 V100 GPU-hours at TDP: 300 kWh) carries no units: p1's share
    of idefics' pretraining drops by it, in the all-projects report as in idefics' own."""
    est = tmp_path / "estimates.yaml"
    est.write_text("phases:\n  - {project: idefics, phase: pretraining, name: early runs, gpu_model: V100, "
                   "gpu_hours: 1000, intensity: 57, start: '2024-03-10T00:00:00Z', end: '2024-03-11T00:00:00Z'}\n",
                   encoding="utf-8")
    phases = tuple(load_manual_phases(str(est)))
    fleet = _report(units_fleet, layers=("gpu",), estimates=phases)
    own = _report(units_fleet, project="idefics", layers=("gpu",), estimates=phases)
    want = _kwh("idefics", "pretraining") / (_kwh("idefics", "pretraining") + 300.0)
    (f,) = [x for x in fleet.sci.rows if (x.project, x.phase) == ("idefics", "pretraining")]
    (p,) = [x for x in own.sci.rows if x.phase == "pretraining"]
    assert f.energy_share == pytest.approx(want, rel=1e-9) and p.energy_share == pytest.approx(want, rel=1e-9)
    (b,) = [x for x in fleet.sci.rows if x.project == "bloom-mini"]
    assert b.energy_share == 1.0                   # another project's manual phase is not its energy


def test_fleet_sci_renders_with_a_project_column(units_fleet) -> None:
    r = _report(units_fleet)
    md = render(r, "md")
    assert "## SCI: emissions per functional unit, per project" in md
    assert "| Project | Phase | Unit | Units | Jobs | Share of the project's phase energy |" in md
    assert "| bloom-mini | pretraining | tokens | 2,000,000,000 | 1 | 100.0 % |" in md
    assert "| idefics | all | tokens | 5,000,000,000 | 2 |" in md
    assert "Per functional unit (SCI, training)" not in md     # the model card's sentence: a project report's
    html = render(r, "html")
    assert "<h2>SCI: emissions per functional unit, per project</h2>" in html
    assert "<td>bloom-mini</td><td>pretraining</td><td>tokens</td>" in html
    csv = render(r, "csv")
    assert "\nsci,bloom-mini/pretraining/tokens,rows.g_per_unit," in csv
    assert "\nsci,idefics/all/tokens,rows.units,5000000000.0,\n" in csv
    data = r.to_dict()
    assert [row["project"] for row in data["sci"]["rows"]][:2] == ["bloom-mini", "idefics"]
    assert list(data["sci"]["rows"][0])[:3] == ["project", "phase", "unit_name"]
    assert "project" not in _report(units_fleet, project="idefics").to_dict()["sci"]["rows"][0]
    assert Report.from_dict(data) == r


# -- the model card: the training SCI -------------------------------------------------------------------------------

def _significant(x: float) -> float:
    return float(f"{x:.6g}")


def test_model_card_states_the_training_sci(units_fleet) -> None:
    """Training rows: pretraining in tokens (p1) and finetuning in samples (f1); p1 used more energy, so the card
    states tokens, from the pretraining row alone (experimentation's tokens are not training)."""
    r = _report(units_fleet, project="idefics")
    (p,) = [x for x in r.sci.rows if x.phase == "pretraining"]
    block = co2_metadata(r)
    assert list(block) == [*(k for k in STANDARD_FIELDS if k in block), *DISCLOSURE_FIELDS, *SCI_FIELDS]
    assert block["sci_g_per_unit"] == _significant(p.g_per_unit) and block["sci_g_per_unit"] > 0
    assert block["sci_g_per_million_units"] == _significant(p.g_per_million_units)
    assert block["sci_unit_name"] == "tokens" and block["sci_units"] == 4e9
    assert block["sci_functional_unit"] == ("one of the 4,000,000,000 tokens of the pretraining jobs that give units "
                                            "(1 job, 100.0 % of the phase's energy)")
    assert block["sci_method"].startswith("SCI = (E x I + M) / R per the Green Software Foundation")
    card = update_text("---\nlicense: mit\n---\n# model\n", block)
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "mit" and meta["co2_eq_emissions"] == block
    # and the body says the same
    assert (f"Per functional unit (SCI, training): {_num(p.g_per_million_units)} g of CO2eq per 1,000,000 tokens, "
            f"{_num(p.g_per_unit)} g per unit, a unit being one of the 4,000,000,000 tokens") in markdown(r)


def _num(x: float) -> str:
    from wattprint.pipeline.report.fmt import num

    return num(x)


def test_model_card_adds_a_unit_name_over_both_training_phases(report_fleet, tmp_path) -> None:
    """p1 and f1 both in tokens: grams over tokens of both rows, as the report's `all` row does for every phase."""
    both = _with_units(report_fleet, tmp_path, {"p1": (4e9, "tokens"), "f1": (1e9, "tokens"), "f2": (3.0, "runs")})
    r = _report(both, project="idefics")
    rows = {x.phase: x for x in r.sci.rows if x.unit_name == "tokens"}
    p, f = rows["pretraining"], rows["finetuning"]
    block = co2_metadata(r)
    assert block["sci_units"] == 5e9 and block["sci_unit_name"] == "tokens"
    assert block["sci_g_per_unit"] == pytest.approx((p.sci_g + f.sci_g) / 5e9, rel=1e-5)
    assert block["sci_g_per_million_units"] == pytest.approx((p.sci_g + f.sci_g) / 5e3, rel=1e-5)
    assert block["sci_functional_unit"].startswith("one of the 5,000,000,000 tokens of the pretraining and finetuning "
                                                   "jobs that give units (2 jobs; pretraining 100.0 %, finetuning ")


def test_model_card_without_training_units_has_no_sci(units_fleet, report_fleet) -> None:
    only_experiments = _report(units_fleet, project="idefics", phases=("experimentation",))
    assert only_experiments.sci is not None and only_experiments.sci.rows      # e1's tokens, not training
    for r in (only_experiments, _report(report_fleet, project="idefics")):
        block = co2_metadata(r)
        assert not set(SCI_FIELDS) & set(block)
        assert "Per functional unit (SCI, training)" not in markdown(r)


def test_model_card_verb_writes_the_sci_in_metadata_and_a_new_cards_body(units_fleet, tmp_path, capsys) -> None:
    db_path, cfg = units_fleet
    card = tmp_path / "README.md"
    code = cli_main(["report", "--db", str(db_path), "--config", str(cfg), "--month", "2024-03", "-q", "--project",
                     "idefics", "--format", "model-card", "--out", str(card)])
    assert code == 0, capsys.readouterr().err
    text = card.read_text(encoding="utf-8")
    co2 = yaml.safe_load(text.split("---\n")[1])["co2_eq_emissions"]
    assert co2["sci_unit_name"] == "tokens" and co2["sci_g_per_million_units"] > 0
    body = text.split("---\n", 2)[2]
    assert "Per functional unit (SCI, training): " in body and "## SCI: emissions per functional unit" in body
    assert body.index("Per functional unit (SCI, training)") < body.index("## Accounting layers")


def test_a_unit_name_is_cleaned_on_the_card_and_kept_in_the_json(report_fleet, tmp_path) -> None:
    odd = _with_units(report_fleet, tmp_path, {"p1": (4e9, "tok\u202eens\x1b[31m")})
    r = _report(odd, project="idefics")
    (p,) = r.sci.rows
    assert p.unit_name == "tok\u202eens\x1b[31m"
    block = co2_metadata(r)
    assert block["sci_unit_name"] == "tokens[31m" and "\u202e" not in block["sci_functional_unit"]
    assert "\u202e" not in markdown(r) and "\x1b" not in markdown(r)
