"""The disclosure sections (report/disclosure.py) on the known fleet of tests/reportkit.py: the ESRS E1-style table
of the all-projects report and the EU AI Act Annex XI training energy of a project report (and its model-card
fields). Expected energies come from the generator's parameters (reportkit.truth()), not from SQL; the ESRS table
must restate the Scope 2 section and the embodied layer exactly."""

from __future__ import annotations

from datetime import datetime

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
