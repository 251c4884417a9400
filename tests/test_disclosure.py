"""The disclosure sections (report/disclosure.py) on the known fleet of tests/reportkit.py: the ESRS E1-style table
of the all-projects report and the EU AI Act Annex XI training energy of a project report (and its model-card
fields). Expected energies come from the generator's parameters (reportkit.truth()), not from SQL; the ESRS table
must restate the Scope 2 section and the embodied layer exactly."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest
import yaml

from tests import reportkit
from wattprint.pipeline.report.compute import build_report
from wattprint.pipeline.report.disclosure import TRAINING_PHASES
from wattprint.pipeline.report.markdown import render as markdown
from wattprint.pipeline.report.modelcard import DISCLOSURE_FIELDS, STANDARD_FIELDS, update_text
from wattprint.pipeline.report.run import co2_metadata, render
from wattprint.pipeline.report.scope import ReportOptions
from wattprint.pipeline.report.types import Report
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


def test_annex_xi_counts_pretraining_and_finetuning_gpu_energy(report_fleet) -> None:
    r = _report(report_fleet, project="idefics", layers=("gpu",))
    a = r.annex_xi
    assert a is not None and r.esrs_e1 is None
    assert a.training_phases == TRAINING_PHASES == ("pretraining", "finetuning")
    training = _kwh("idefics", "pretraining") + _kwh("idefics", "finetuning")
    assert a.energy_kwh == pytest.approx(training, rel=1e-9)
    assert a.measured_kwh == pytest.approx(training, rel=1e-9) and a.estimated_kwh == 0
    assert a.other_phases_kwh == pytest.approx(_kwh("idefics", "experimentation"), rel=1e-9)
    assert [(p.phase, p.label) for p in a.phases] == [("pretraining", "measured"), ("finetuning", "measured")]
    assert all(p.method.startswith("measured: the GPUs' hardware energy counters") for p in a.phases)


def test_annex_xi_energy_is_facility_energy_with_pue(report_fleet) -> None:
    """p1, the only pretraining job of idefics, ran on aws-usw2: its GPU energy times that cluster's PUE."""
    r = _report(report_fleet, project="idefics", phases=("pretraining",), layers=("gpu", "pue"))
    a = r.annex_xi
    assert a is not None
    (p1,) = [j for j in reportkit.JOBS if j.project == "idefics" and j.phase == "pretraining"]
    assert a.energy_kwh == pytest.approx(_kwh("idefics", "pretraining") * reportkit.PUE[p1.cluster], rel=1e-9)
    assert a.energy_kwh == pytest.approx(r.total.facility_energy_kwh, rel=1e-12)
    assert a.other_phases_kwh == 0
    assert "facility energy with the clusters' PUE" in a.phases[0].method


def test_annex_xi_in_the_model_card_beside_co2_eq_emissions(report_fleet) -> None:
    r = _report(report_fleet, project="idefics")
    a = r.annex_xi
    assert a is not None and a.energy_kwh > 0
    assert r.scope2 is not None      # the same electricity the Scope 2 section prices for those phases
    assert a.energy_kwh == pytest.approx(sum(s.energy_kwh for s in r.scope2.phases if s.phase in TRAINING_PHASES),
                                         rel=1e-9)
    block = co2_metadata(r)
    assert list(block)[:len(STANDARD_FIELDS)] == [k for k in STANDARD_FIELDS if k in block]
    assert block["training_energy_kwh"] == round(a.energy_kwh, 3)
    assert block["training_energy_method"].startswith("EU AI Act Annex XI 1(2)(e): measured energy")
    assert set(block) - set(STANDARD_FIELDS) == set(DISCLOSURE_FIELDS)
    card = update_text("---\nlicense: mit\n---\n# model\n", block)
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["license"] == "mit" and meta["co2_eq_emissions"] == block
    assert meta["co2_eq_emissions"]["emissions"] == round(r.total.emissions_kg * 1000, 2)


def test_no_training_phase_gives_no_training_energy(report_fleet) -> None:
    r = _report(report_fleet, project="idefics", phases=("experimentation",))
    a = r.annex_xi
    assert a is not None and a.phases == () and a.energy_kwh == 0
    assert "training_energy_kwh" not in co2_metadata(r)
    assert "No training phase (pretraining, finetuning) in this report" in markdown(r)


def test_esrs_e1_restates_scope2_and_the_embodied_layer(report_fleet) -> None:
    r = _report(report_fleet)
    e, s = r.esrs_e1, r.scope2
    assert e is not None and s is not None and r.annex_xi is None
    assert e.energy_mwh == s.total.energy_kwh / 1000
    assert e.energy_mwh == pytest.approx(r.total.facility_energy_kwh / 1000, rel=1e-9)   # the headline's layers
    assert e.scope2_location_tco2eq == s.total.location_kg / 1000
    assert e.scope2_market_tco2eq == s.total.market_kg / 1000
    embodied = next(x for x in r.layers if x.layer == "embodied")
    assert e.scope3_embodied_tco2eq == embodied.emissions_kg / 1000 and e.scope3_embodied_tco2eq > 0
    assert e.embodied_in_headline is False
    # no instruments and no residual mix in the fleet's config: market-based is location-based, and said so
    assert s.total.covered_kwh == 0 and s.total.residual_mix_kwh == 0
    assert e.scope2_market_tco2eq == pytest.approx(e.scope2_location_tco2eq, rel=1e-12)
    assert "market-based equals location-based" in e.note


def test_esrs_e1_energy_is_the_fleets_gpu_energy_with_gpu_layer_only(report_fleet) -> None:
    r = _report(report_fleet, layers=("gpu", "embodied"))
    e = r.esrs_e1
    assert e is not None
    assert e.energy_mwh == pytest.approx(sum(TRUTH.energy_j.values()) / 3.6e9, rel=1e-9)
    assert e.embodied_in_headline is True
    # embodied is in the headline but never in Scope 2: the headline is Scope 2 (location) + Scope 3 here
    assert r.total.emissions_kg == pytest.approx((e.scope2_location_tco2eq + e.scope3_embodied_tco2eq) * 1000,
                                                 rel=1e-9)


def test_sections_in_every_format(report_fleet) -> None:
    fleet, project = _report(report_fleet), _report(report_fleet, project="idefics")
    assert "## ESRS E1 disclosure" in render(fleet, "md") and "## EU AI Act Annex XI" in render(project, "md")
    assert '<section id="esrs-e1">' in render(fleet, "html") and '<section id="annex-xi">' in render(project, "html")
    csv = render(fleet, "csv")
    assert "esrs_e1,,scope2_market_tco2eq," in csv and csv.split("esrs_e1,,energy_mwh,", 1)[1].split("\n")[0] \
        .endswith(",MWh")
    assert "\nannex_xi,pretraining/measured,phases.energy_kwh," in render(project, "csv")
    assert "\nannex_xi,,estimated_kwh,0.0,kWh\n" in render(project, "csv")
    assert Report.from_dict(project.to_dict()) == project and Report.from_dict(fleet.to_dict()) == fleet


# -- SCI per functional unit --------------------------------------------------------------------------------------

UNITS = {"p1": (4e9, "tokens"), "e1": (1e9, "tokens"), "f1": (1000.0, "samples")}


@pytest.fixture
def units_fleet(report_fleet, tmp_path):
    """A copy of the known fleet whose ledger gives p1 and e1 tokens and f1 samples (f2 and e2: none)."""
    path, cfg = report_fleet
    copy = tmp_path / "units.duckdb"
    copy.write_bytes(path.read_bytes())
    con = duckdb.connect(str(copy))
    con.executemany("UPDATE jobs SET units = ?, unit_name = ? WHERE job_id = ?",
                    [[u, n, jid] for jid, (u, n) in UNITS.items()])
    con.close()
    return copy, cfg


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
    assert _report(report_fleet).sci is None                 # the all-projects report: not built there
    r = _report(units_fleet, project="idefics")
    md = render(r, "md")
    assert "## SCI: emissions per functional unit" in md and "| pretraining | tokens | 4,000,000,000 |" in md
    assert '<section id="sci">' in render(r, "html")
    assert "\nsci,pretraining/tokens,rows.g_per_unit," in render(r, "csv")
    assert Report.from_dict(r.to_dict()) == r


def test_sci_two_unit_names_in_one_phase_give_one_row_each(report_fleet, tmp_path) -> None:
    path, cfg = report_fleet
    copy = tmp_path / "two.duckdb"
    copy.write_bytes(path.read_bytes())
    con = duckdb.connect(str(copy))
    con.executemany("UPDATE jobs SET units = ?, unit_name = ? WHERE job_id = ?",
                    [[1000.0, "samples", "f1"], [50.0, "images", "f2"]])
    con.close()
    r = _report((copy, cfg), project="idefics", phases=("finetuning",), layers=("gpu",))
    assert r.sci is not None
    rows = {x.unit_name: x for x in r.sci.rows}
    assert [(x.phase, x.unit_name) for x in r.sci.rows] == [("finetuning", "images"), ("finetuning", "samples")]
    whole = TRUTH.energy_j[("idefics", "finetuning")]
    assert rows["samples"].energy_share == pytest.approx(_job_j("f1") / whole, rel=1e-9)
    assert rows["images"].energy_share == pytest.approx(_job_j("f2") / whole, rel=1e-9)
    assert rows["images"].units == 50 and rows["images"].jobs == 1
    assert rows["samples"].sci_g + rows["images"].sci_g == pytest.approx(
        TRUTH.gpu_g[("idefics", "finetuning")] + r.phases[0].layers.embodied.emissions_kg * 1000, rel=1e-9)
