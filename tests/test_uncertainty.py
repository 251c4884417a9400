"""Uncertainty bands (report/uncertainty.py, sql/rpt_uncertainty.sql) on the known fleet of tests/reportkit.py: a band
computed by hand from the generator's parameters and the shipped bounds (data/uncertainty.csv), the band around every
headline number on many scopes and on random rows, and the same band from two builds."""

from __future__ import annotations

import csv
import random
from datetime import datetime
from pathlib import Path

import pytest

from tests import reportkit
from wattprint.pipeline import db
from wattprint.pipeline.report.compute import build_report
from wattprint.pipeline.report.scope import ReportOptions
from wattprint.pipeline.report.types import Report
from wattprint.pipeline.report.uncertainty import bound, bounds
from wattprint.pipeline.report.window import month
from wattprint.pipeline.settings import load_settings
from wattprint.pipeline.sources.intensity import embedded

COUNTER_LIKE = ("counter", "counter_reset", "counter_stepback", "first_sample", "gap", "gap_reset")


def _report(fleet: tuple[Path, Path], **kw) -> Report:
    path, cfg = fleet
    con = db.connect(path, read_only=True)
    try:
        return build_report(con, load_settings(str(cfg)),
                            ReportOptions(window=month("2024-03"), generated_at=datetime(2024, 4, 1), **kw))
    finally:
        con.close()


def _bands(r: Report):
    u = r.uncertainty
    assert u is not None
    return [u.total, *u.phases, *u.projects]


# ---------------------------------------------------------------------------------------------- the table


def test_every_bound_has_a_source_and_brackets_zero() -> None:
    rows = list(csv.DictReader(Path("wattprint/pipeline/data/uncertainty.csv").open(encoding="utf-8")))
    assert len(rows) == len(bounds())
    for b in bounds():
        assert -1.0 < b.low_pct <= 0.0 <= b.high_pct, b
        assert b.source.strip()
        assert ("wattprint's" in b.source) or ("http" in b.source) or ("arXiv" in b.source) or \
            ("intensity_annual.csv" in b.source), b        # cited, derived from a shipped table, or labelled
    # every class the model writes has its row
    for q in ("hourly", "nearest_hour", "monthly_mean", "annual_default", "world_default"):
        bound("intensity", q)
    for q in (*COUNTER_LIKE, "power_integrated", "other", "estimated_tdp"):
        bound("energy", q)
    bound("pue", "declared"), bound("pue", "default"), bound("embodied", "amortised")


def test_world_default_bounds_cover_the_shipped_annual_table() -> None:
    """The world default's bounds are derived from the shipped table: every country value lies inside them."""
    world = embedded.world().g_per_kwh
    b = bound("intensity", "world_default")
    rows = list(csv.DictReader(Path("wattprint/pipeline/data/intensity_annual.csv").open(encoding="utf-8")))
    values = [float(r["g_per_kwh"]) for r in rows if r["kind"] == "country"]
    assert world * (1 + b.low_pct) <= min(values) and max(values) <= world * (1 + b.high_pct)


# ---------------------------------------------------------------------------------------------- by hand


def test_a_counter_job_at_hourly_intensity_and_declared_pue_by_hand(report_fleet) -> None:
    """Pretraining of idefics is p1 alone (four H100s of ip-10-0-0-1): counter energy, hourly intensity (nearest
    hour for the zone's two missing hours), PUE 1.1 declared. Layers gpu and pue."""
    r = _report(report_fleet, project="idefics", phases=("pretraining",), layers=("gpu", "pue"))
    job = next(j for j in reportkit.JOBS if j.job_id == "p1")
    zone, pue = reportkit.ZONE[job.cluster], reportkit.PUE[job.cluster]
    hourly: dict[int, float] = {}
    for m in range(job.start_min, job.end_min, reportkit.STEP_MIN):
        hourly[m // 60] = hourly.get(m // 60, 0.0) + job.watts * reportkit.STEP_MIN * 60 * len(job.gpus)
    e = bound("energy", "counter")
    u = bound("pue", "declared")
    point = low = high = 0.0
    for h, joules in hourly.items():
        g, q = reportkit.resolved_intensity(zone, h)
        i = bound("intensity", q)
        point += joules / 3.6e6 * g * pue
        low += joules * (1 + e.low_pct) / 3.6e6 * g * (1 + i.low_pct) * max(1.0, pue * (1 + u.low_pct))
        high += joules * (1 + e.high_pct) / 3.6e6 * g * (1 + i.high_pct) * max(1.0, pue * (1 + u.high_pct))
    u_ = r.uncertainty
    assert u_ is not None
    assert r.total.emissions_kg == pytest.approx(point / 1000, rel=1e-6)
    assert u_.total.low_kg == pytest.approx(low / 1000, rel=1e-6)
    assert u_.total.high_kg == pytest.approx(high / 1000, rel=1e-6)
    (ph,) = u_.phases
    assert (ph.name, ph.label, ph.low_kg, ph.high_kg) == ("pretraining", "measured", u_.total.low_kg,
                                                          u_.total.high_kg)


# ---------------------------------------------------------------------------------------------- containment

SCOPES = {
    "project": {"project": "idefics"},
    "fleet": {},
    "gpu_only": {"project": "idefics", "layers": ("gpu",)},
    "embodied": {"layers": ("gpu", "cpu", "idle", "pue", "embodied")},
    "separate": {"idle_policy": "separate"},
    "phases": {"project": "idefics", "phases": ("experimentation", "finetuning")},
    "bloom": {"project": "bloom-mini", "layers": ("gpu", "idle")},
}


@pytest.mark.parametrize("name", sorted(SCOPES))
def test_every_band_contains_its_number(report_fleet, name) -> None:
    r = _report(report_fleet, **SCOPES[name])
    u = r.uncertainty
    assert u is not None
    assert u.total.emissions_kg == r.total.emissions_kg
    assert [(b.name, b.label, b.emissions_kg) for b in u.phases] == [(p.phase, p.label, p.emissions_kg)
                                                                     for p in r.phases]
    for b in _bands(r):
        assert b.low_kg <= b.emissions_kg <= b.high_kg, b
        if b.emissions_kg > 0:
            assert b.low_kg < b.emissions_kg < b.high_kg, b
    # the total's band is the sum of the phases' bands (interval arithmetic adds)
    assert u.total.low_kg == pytest.approx(sum(b.low_kg for b in u.phases), rel=1e-9)
    assert u.total.high_kg == pytest.approx(sum(b.high_kg for b in u.phases), rel=1e-9)
    if r.fleet is not None:
        assert [(b.name, b.emissions_kg) for b in u.projects] == [(p.project, p.emissions_kg)
                                                                  for p in r.fleet.projects]
        assert u.total.low_kg == pytest.approx(sum(b.low_kg for b in u.projects), rel=1e-9)
    else:
        assert u.projects == ()


def test_the_same_inputs_give_the_same_band(report_fleet) -> None:
    a = _report(report_fleet, layers=("gpu", "cpu", "idle", "pue", "embodied"))
    b = _report(report_fleet, layers=("gpu", "cpu", "idle", "pue", "embodied"))
    assert a.uncertainty is not None and a.uncertainty.to_dict() == b.uncertainty.to_dict()   # type: ignore[union-attr]


QUALITIES_E = (*COUNTER_LIKE, "power_integrated", "something_new")
QUALITIES_I = ("hourly", "nearest_hour", "monthly_mean", "annual_default", "world_default")


@pytest.mark.parametrize("seed", range(5))
def test_random_rows_are_inside_their_band(seed) -> None:
    """rpt_uncertainty.sql on random rows (random energies, intensities, PUEs, qualities, layers): the band holds
    the point, and the point is the headline's arithmetic (layers.Sums over the same rows)."""
    rnd = random.Random(seed)
    con = db.connect(":memory:")
    try:
        from wattprint.pipeline.db import run_sql
        from wattprint.pipeline.report.uncertainty import _load
        run_sql(con, "macros")
        con.execute("CREATE OR REPLACE TEMP TABLE rpt_rows (cluster VARCHAR, phase VARCHAR, project VARCHAR, "
                    "energy_quality VARCHAR, intensity_quality VARCHAR, intensity_g_per_kwh DOUBLE, pue DOUBLE, "
                    "energy_j DOUBLE, cpu_j DOUBLE, idle_j DOUBLE, cpu_idle_j DOUBLE, emb_g DOUBLE, node_j DOUBLE, "
                    "node_idle_j DOUBLE)")
        clusters = [f"c{i}" for i in range(3)]
        for c in clusters:
            con.execute("INSERT INTO clusters (cluster, pue, pue_known) VALUES (?, 1.0, ?)", [c, rnd.random() < 0.5])
        rows = [(rnd.choice(clusters), rnd.choice(("a", "b")), rnd.choice(("p", None)), rnd.choice(QUALITIES_E),
                 rnd.choice(QUALITIES_I), rnd.uniform(0, 900), rnd.choice((1.0, rnd.uniform(1.0, 2.0))),
                 rnd.uniform(0, 1e9), rnd.uniform(0, 1e8), rnd.uniform(0, 1e8), rnd.uniform(0, 1e7),
                 rnd.uniform(0, 1e4), rnd.uniform(0, 1e8), rnd.uniform(0, 1e7)) for _ in range(200)]
        con.executemany("INSERT INTO rpt_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        _load(con)
        for _ in range(4):
            g, p, m = rnd.random() < 0.8, rnd.random() < 0.5, rnd.random() < 0.5
            c, k, n = float(rnd.random() < 0.5), float(rnd.random() < 0.5), float(rnd.random() < 0.5)
            got = run_sql(con, "rpt_uncertainty", {"g": g, "c": c, "k": k, "n": n, "p": p, "m": m}).fetchall()
            assert {kind for kind, *_ in got} == {"total", "phase", "project"}
            point = 0.0
            for (_, _, _, _, _, gpk, pue, e, cj, ij, cij, emb, nj, nij) in rows:
                own = (e if g else 0.0) + c * cj + n * nj + k * (ij + c * cij + n * nij)
                base = e + c * cj + n * nj + k * (ij + c * cij + n * nij)
                point += own / 3.6e6 * gpk + (base / 3.6e6 * gpk * (pue - 1) if p else 0.0) + (emb if m else 0.0)
            for kind, _, pt, lo, hi in got:
                assert lo <= pt <= hi
                if kind == "total":
                    assert pt == pytest.approx(point, rel=1e-9)
    finally:
        con.close()


def test_an_estimated_phase_by_hand(report_fleet, tmp_path) -> None:
    """A manual phase (V100 TDP x GPU-hours, CPU core-hours x watts per core, declared intensity and PUE): its band is
    the TDP energy at the estimated_tdp bounds, the declared intensity at the annual_default bounds and the declared
    PUE at the declared bounds (never below 1), read here from the shipped CSV, not from the module."""
    from wattprint.pipeline.estimate import load_manual_phases

    est = tmp_path / "estimates.yaml"
    est.write_text("phases:\n"
                   "  - {project: idefics, phase: experimentation, name: preliminary experimentation, gpu_model: V100,"
                   " gpu_hours: 1000, cpu_hours: 4000, cpu_watts_per_socket: 150, cores_per_socket: 20,"
                   " intensity: 57, pue: 1.2}\n", encoding="utf-8")
    r = _report(report_fleet, project="idefics", estimates=tuple(load_manual_phases(str(est))))
    table = {(row["input"], row["class"]): (float(row["low"]), float(row["high"]))
             for row in csv.DictReader(Path("wattprint/pipeline/data/uncertainty.csv").open(encoding="utf-8"))}
    kwh = 1000 * 300 / 1000 + 4000 * 150 / 20 / 1000       # V100 SXM2 300 W; 7.5 W per core
    want = []
    for side in (0, 1):
        fe = 1 + table[("energy", "estimated_tdp")][side]
        fi = 1 + table[("intensity", "annual_default")][side]
        fu = 1 + table[("pue", "declared")][side]
        want.append(kwh * fe * 57 * fi * max(1.0, 1.2 * fu) / 1000)    # kg: own energy + PUE overhead
    assert r.uncertainty is not None
    (b,) = [p for p in r.uncertainty.phases if p.label == "estimated (TDP)"]
    assert b.emissions_kg == pytest.approx(kwh * 57 * 1.2 / 1000, rel=1e-9)
    assert (b.low_kg, b.high_kg) == pytest.approx(tuple(want), rel=1e-9)
    assert b.low_kg <= b.emissions_kg <= b.high_kg


# ---------------------------------------------------------------------------------------------- market basis


@pytest.mark.parametrize("name", ["fleet", "embodied", "separate", "gpu_only"])
def test_market_bands_without_instruments_are_the_location_bands(report_fleet, name) -> None:
    """The test fleet's config has no instrument and no residual mix, so market-based is location-based (every kWh
    at the location-based fallback) and the market-based bands (sql/rpt_uncertainty_market.sql) must come out as the
    location-based ones (sql/rpt_uncertainty.sql): the same energy, PUE and intensity bounds, another statement."""
    loc = _report(report_fleet, **SCOPES[name])
    mkt = _report(report_fleet, scope2_basis="market", **SCOPES[name])
    assert mkt.uncertainty is not None and mkt.uncertainty.basis == "market"
    assert mkt.total.emissions_kg == pytest.approx(loc.total.emissions_kg, rel=1e-9)
    for a, b in zip(_bands(loc), _bands(mkt), strict=True):
        assert (a.name, a.label) == (b.name, b.label)
        assert (b.emissions_kg, b.low_kg, b.high_kg) == pytest.approx((a.emissions_kg, a.low_kg, a.high_kg), rel=1e-9)
        assert b.low_kg <= b.emissions_kg <= b.high_kg


def test_an_estimated_phase_is_the_same_under_market_basis(report_fleet, tmp_path) -> None:
    """No instrument covers a manual phase: its figure and band are the same under either basis, and the phases
    still add up to the total."""
    from wattprint.pipeline.estimate import load_manual_phases

    est = tmp_path / "estimates.yaml"
    est.write_text("phases:\n"
                   "  - {project: idefics, phase: experimentation, name: preliminary experimentation, gpu_model: V100,"
                   " gpu_hours: 1000, intensity: 57, pue: 1.2}\n", encoding="utf-8")
    phases = tuple(load_manual_phases(str(est)))
    loc = _report(report_fleet, project="idefics", estimates=phases)
    mkt = _report(report_fleet, project="idefics", estimates=phases, scope2_basis="market")
    (a,) = [p for p in loc.phases if p.label != "measured"]
    (b,) = [p for p in mkt.phases if p.label != "measured"]
    assert b.emissions_kg == b.location_kg == a.emissions_kg
    assert sum(p.emissions_kg for p in mkt.phases) == pytest.approx(mkt.total.emissions_kg, rel=1e-9)
    assert loc.uncertainty is not None and mkt.uncertainty is not None
    (ba,) = [p for p in loc.uncertainty.phases if p.label != "measured"]
    (bb,) = [p for p in mkt.uncertainty.phases if p.label != "measured"]
    assert (ba.low_kg, ba.high_kg) == (bb.low_kg, bb.high_kg)
