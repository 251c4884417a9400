"""Market-based Scope 2 beside location-based (report/scope2.py, docs/methodology.md "Scope 2").

The scenario: three clusters in March 2024, GPU jobs of two projects at constant power, constant hourly intensity per
zone, no idle or host energy (so each job's Scope 2 electricity is its GPU energy x its cluster's PUE):

    cluster  zone            PUE    jobs (1 GPU each)                                   electricity
    jz       FR  (50 g/kWh)  1.2    a1 alpha pretraining 1000 W 10 h = 10 kWh -> 12 kWh  18 kWh
                                    b1 beta  finetuning   500 W 10 h =  5 kWh ->  6 kWh
    de1      DE (400 g/kWh)  none   b2 beta  evaluation   800 W  5 h =  4 kWh ->  4 kWh   6 kWh
                                    a2 alpha finetuning   400 W  5 h =  2 kWh ->  2 kWh
    cloud    aws:us-west-2   1.1    c1 beta  pretraining  600 W 10 h =  6 kWh -> 6.6 kWh  6.6 kWh
             (300 g/kWh)

Instruments (monthly matching), declared certificates first to show the hierarchy puts the PPA first:
    go-fr     GO batch, zone FR (= jz), 0.004 MWh, 0 g/kWh
    ppa-wind  PPA on jz, 0.009 MWh for March (part of jz's 18 kWh), 0 g/kWh
    go-de     GO batch on de1, 0.003 MWh, 0 g/kWh
    aws-mix   supplier factor on cloud, all consumption, 250 g/kWh
Residual mixes: FR 2023 60 g/kWh (the latest year not after 2024); none for DE (flagged: location-based used).

Hand computation, market-based:
    jz:    ppa-wind 9 kWh x 0 + go-fr 4 kWh x 0 + residual (18 - 13 =) 5 kWh x 60        =   300 g
    de1:   go-de 3 kWh x 0 + (6 - 3 =) 3 kWh at the location-based 400 g/kWh (no residual) = 1,200 g
    cloud: aws-mix 6.6 kWh x 250                                                         = 1,650 g
    total                                                                                 = 3,150 g
  per project (jz's cell is 13/18 covered, de1's 3/6, pro rata to every kWh in it):
    alpha: jz 12 x 5/18 x 60 = 200 g + de1 2 x 3/6 x 400 = 400 g                          =   600 g
    beta:  jz  6 x 5/18 x 60 = 100 g + de1 4 x 3/6 x 400 = 800 g + cloud 1,650 g           = 2,550 g
  per phase: pretraining a1 200 + c1 1,650 = 1,850 g; finetuning b1 100 + a2 400 = 500 g; evaluation b2 800 g
Location-based: jz 18 x 50 = 900 g, de1 6 x 400 = 2,400 g, cloud 6.6 x 300 = 1,980 g: 5,280 g.
Covered: 9 + 4 + 3 + 6.6 = 22.6 kWh of 30.6 kWh.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wattprint.pipeline import db
from wattprint.pipeline.cli import main
from wattprint.pipeline.config import load, load_text
from wattprint.pipeline.errors import InputError
from wattprint.pipeline.model import rebuild
from wattprint.pipeline.report.scope2 import match, periods
from wattprint.pipeline.scope2 import Instrument
from wattprint.pipeline.settings import load_settings

from .modelkit import add_steady_job

T0 = datetime(2024, 3, 1, tzinfo=UTC)
CLUSTERS = """\
clusters:
  jz: {zone: FR, pue: 1.2, nodes: ["jz*"]}
  de1: {zone: DE, nodes: ["de*"]}
  cloud: {provider: aws, region: us-west-2, zone: aws:us-west-2, pue: 1.1, nodes: ["ip-*"]}
default_cluster: jz
"""
SCOPE2 = """\
scope2:
  matching: monthly
  instruments:
    - {name: go-fr, kind: certificate, certificate: GO, zone: FR, start: 2024-03-01, end: 2024-04-01, mwh: 0.004,
       g_per_kwh: 0, registry_id: GO-FR-1}
    - {name: ppa-wind, kind: ppa, clusters: [jz], start: 2024-03-01, end: 2024-04-01, mwh: 0.009, g_per_kwh: 0}
    - {name: go-de, kind: certificate, certificate: GO, clusters: [de1], start: 2024-03-01, end: 2024-04-01,
       mwh: 0.003, g_per_kwh: 0, registry_id: GO-DE-7}
    - {name: aws-mix, kind: supplier, clusters: [cloud], start: 2024-01-01, end: 2025-01-01, mwh: all,
       g_per_kwh: 250}
  residual_mix:
    - {zone: FR, year: 2023, g_per_kwh: 60, source: "test residual mix"}
"""
# job, project, phase, cluster, node, watts, minutes
JOBS = (("a1", "alpha", "pretraining", "jz", "jz1", 1000.0, 600),
        ("b1", "beta", "finetuning", "jz", "jz2", 500.0, 600),
        ("b2", "beta", "evaluation", "de1", "de01", 800.0, 300),
        ("a2", "alpha", "finetuning", "de1", "de02", 400.0, 300),
        ("c1", "beta", "pretraining", "cloud", "ip-1", 600.0, 600))
INTENSITY = {"FR": 50.0, "DE": 400.0, "aws:us-west-2": 300.0}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("scope2")
    plain, with_s2 = tmp / "plain.yaml", tmp / "scope2.yaml"
    plain.write_text(CLUSTERS, encoding="utf-8")
    with_s2.write_text(CLUSTERS + SCOPE2, encoding="utf-8")
    path = tmp / "s.duckdb"
    con = db.connect(path)
    for job in JOBS:
        add_steady_job(con, *job)
    for zone, g in INTENSITY.items():
        con.executemany(
            "INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin)"
            " VALUES (?, ?, ?, 'lifecycle', 'test', false, 3600, 'test')",
            [[zone, T0 + timedelta(hours=h), g] for h in range(24)])
    with db.transaction(con):
        rebuild(con, load_settings(str(with_s2)).build_settings())
    con.close()
    return path, plain, with_s2


def _report(scenario, capsys, config: Path, *args: str) -> dict:  # type: ignore[no-untyped-def]
    path = scenario[0]
    code = main(["report", "--db", str(path), "--config", str(config), "--month", "2024-03", "--format", "json", *args])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_market_based_totals_equal_the_hand_computation(scenario, capsys) -> None:  # type: ignore[no-untyped-def]
    r = _report(scenario, capsys, scenario[2])
    s2 = r["scope2"]
    t = s2["total"]
    assert t["energy_kwh"] == pytest.approx(12 + 6 + 4 + 2 + 6.6, rel=1e-3)
    assert t["location_kg"] == pytest.approx((18 * 50 + 6 * 400 + 6.6 * 300) / 1000, rel=1e-3)
    assert t["market_kg"] == pytest.approx((5 * 60 + 3 * 400 + 6.6 * 250) / 1000, rel=1e-3)       # 3.15 kg
    assert t["covered_kwh"] == pytest.approx(9 + 4 + 3 + 6.6, rel=1e-3)
    assert t["covered_share"] == pytest.approx(22.6 / 30.6, rel=1e-3)
    assert t["residual_mix_kwh"] == pytest.approx(5, rel=1e-3)
    assert t["location_fallback_kwh"] == pytest.approx(3, rel=1e-3)
    # the hierarchy: the PPA before the certificates though declared after them, the supplier factor last
    assert [(u["name"], round(u["energy_kwh"], 6)) for u in t["instruments"]] == [
        ("ppa-wind", 9.0), ("go-fr", 4.0), ("go-de", 3.0), ("aws-mix", 6.6)]
    projects = {p["project"]: p for p in s2["projects"]}
    assert projects["alpha"]["market_kg"] == pytest.approx((12 * 5 / 18 * 60 + 2 * 3 / 6 * 400) / 1000, rel=1e-3)
    assert projects["beta"]["market_kg"] == pytest.approx((6 * 5 / 18 * 60 + 4 * 3 / 6 * 400 + 6.6 * 250) / 1000,
                                                          rel=1e-3)
    # covered MWh shared pro rata: alpha has 12 of jz's 18 kWh, so 12/18 of the PPA's 9 kWh
    alpha_ppa = next(u for u in projects["alpha"]["instruments"] if u["name"] == "ppa-wind")
    assert alpha_ppa["energy_kwh"] == pytest.approx(9 * 12 / 18, rel=1e-3)
    phases = {p["phase"]: p["market_kg"] for p in s2["phases"]}
    assert phases == {"pretraining": pytest.approx((12 * 5 / 18 * 60 + 6.6 * 250) / 1000, rel=1e-3),
                      "finetuning": pytest.approx((6 * 5 / 18 * 60 + 2 * 3 / 6 * 400) / 1000, rel=1e-3),
                      "evaluation": pytest.approx(4 * 3 / 6 * 400 / 1000, rel=1e-3)}
    assert [(m["zone"], m["year"], m["energy_kwh"]) for m in s2["residual_mixes"]] == [
        ("FR", 2023, pytest.approx(5, rel=1e-3))]
    assert s2["warnings"] == ["residual mix unknown for DE in 2024: location-based factor used for 3.0 kWh of "
                              "market-based Scope 2"]
    used = {i["name"]: (i["applied_kwh"], i["unused_kwh"]) for i in s2["instruments"]}
    assert used["go-fr"] == (pytest.approx(4, rel=1e-3), pytest.approx(0, abs=1e-9))
    assert used["aws-mix"] == (pytest.approx(6.6, rel=1e-3), None)
    assert s2["basis"] == "location" and s2["matching"] == "monthly"


def test_location_based_totals_unchanged(scenario, capsys) -> None:  # type: ignore[no-untyped-def]
    with_s2 = _report(scenario, capsys, scenario[2])
    plain = _report(scenario, capsys, scenario[1])
    assert with_s2["total"]["emissions_kg"] == pytest.approx((18 * 50 + 6 * 400 + 6.6 * 300) / 1000, rel=1e-3)
    for key in with_s2:
        if key not in ("scope2", "esrs_e1", "generated_at"):      # esrs_e1 restates scope2: checked below
            assert with_s2[key] == plain[key], key
    # the ESRS E1 table: location-based unchanged, market-based the hand computation (3,150 g), in tonnes
    e, e0 = with_s2["esrs_e1"], plain["esrs_e1"]
    assert e["scope2_location_tco2eq"] == e0["scope2_location_tco2eq"] == pytest.approx(5.280 / 1000, rel=1e-3)
    assert e["scope2_market_tco2eq"] == pytest.approx(3.150 / 1000, rel=1e-3)
    assert e["energy_mwh"] == e0["energy_mwh"] == pytest.approx(30.6 / 1000, rel=1e-3)
    assert {k: v for k, v in e.items() if "market" not in k and k != "note"} == \
        {k: v for k, v in e0.items() if "market" not in k and k != "note"}
    # without instruments or residual mixes, market-based is location-based
    assert plain["scope2"]["total"]["market_kg"] == pytest.approx(plain["scope2"]["total"]["location_kg"], rel=1e-12)
    assert plain["scope2"]["total"]["location_kg"] == pytest.approx(plain["total"]["emissions_kg"], rel=1e-12)


def test_market_basis_moves_the_headline_and_the_model_card(scenario, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = _report(scenario, capsys, scenario[2], "--scope2-basis", "market")
    assert r["total"]["emissions_kg"] == pytest.approx((5 * 60 + 3 * 400 + 6.6 * 250) / 1000, rel=1e-3)
    assert r["total"]["location_kg"] == pytest.approx(5.280, rel=1e-6)
    assert r["scope2"]["basis"] == "market"
    card = tmp_path / "README.md"
    assert main(["report", "--db", str(scenario[0]), "--config", str(scenario[2]), "--month", "2024-03",
                 "--project", "alpha", "--format", "model-card", "--out", str(card), "--scope2-basis", "market",
                 "-q"]) == 0
    text = card.read_text()
    assert "market-based" in text and "emissions: 600.0" in text.replace(",", "")
    # the card's source says what the grams are: the contracts' factors, not the grid's; alpha location-based:
    # jz 12 kWh x 50 + de1 2 kWh x 400 = 1,400 g
    (source,) = [line for line in text.splitlines() if line.strip().startswith("source:")]
    assert "the emission factors of contractual instruments" in source and "grid carbon intensity" not in source
    assert "Scope 2 market-based (GHG Protocol), location-based 1,400.0 g" in source


# -- the headline's basis: every headline figure market-based, adding up (report/basis.py) -------------------------

# hand computation (module docstring), grams: market-based and location-based per (project, phase) = per job here
HAND = {("alpha", "pretraining"): ("a1", 12 * 5 / 18 * 60, 12 * 50),
        ("alpha", "finetuning"): ("a2", 2 * 3 / 6 * 400, 2 * 400),
        ("beta", "finetuning"): ("b1", 6 * 5 / 18 * 60, 6 * 50),
        ("beta", "evaluation"): ("b2", 4 * 3 / 6 * 400, 4 * 400),
        ("beta", "pretraining"): ("c1", 6.6 * 250, 6.6 * 300)}


def _sum(figures: dict[tuple[str, str], tuple[str, float, float]], i: int, key: int, name: str) -> float:
    return sum(v[i] for k, v in figures.items() if k[key] == name) / 1000


def test_market_basis_phases_projects_jobs_and_days_add_up_to_the_total(scenario, capsys) -> None:  # type: ignore[no-untyped-def]
    """With --scope2-basis market every figure shown as the headline is market-based, with its location-based figure
    beside it, and they add up to the total (3,150 g) as the location-based ones add up to 5,280 g."""
    r = _report(scenario, capsys, scenario[2], "--scope2-basis", "market")
    total = r["total"]["emissions_kg"]
    assert total == pytest.approx(3.150, rel=1e-6) and r["total"]["location_kg"] == pytest.approx(5.280, rel=1e-6)
    for rows in (r["phases"], r["projects"], r["daily"], [ph for p in r["projects"] for ph in p["phases"]]):
        assert sum(x["emissions_kg"] for x in rows) == pytest.approx(total, rel=1e-9)
        assert sum(x["location_kg"] for x in rows) == pytest.approx(r["total"]["location_kg"], rel=1e-9)
    for p in r["phases"]:
        assert p["emissions_kg"] == pytest.approx(_sum(HAND, 1, 1, p["phase"]), rel=1e-6), p["phase"]
        assert p["location_kg"] == pytest.approx(_sum(HAND, 2, 1, p["phase"]), rel=1e-6), p["phase"]
    for p in r["projects"]:
        assert p["emissions_kg"] == pytest.approx(_sum(HAND, 1, 0, p["project"]), rel=1e-6), p["project"]
        assert p["location_kg"] == pytest.approx(_sum(HAND, 2, 0, p["project"]), rel=1e-6), p["project"]
        assert sum(ph["emissions_kg"] for ph in p["phases"]) == pytest.approx(p["emissions_kg"], rel=1e-9)
        for ph in p["phases"]:
            assert ph["emissions_kg"] == pytest.approx(HAND[(p["project"], ph["phase"])][1] / 1000, rel=1e-6)
    # the top jobs: each job's share of its cluster-hours, priced as the Scope 2 section prices them, ranked by it
    jobs = {j["job_id"]: (j["emissions_kg"], j["location_kg"]) for j in r["top_jobs"]}
    assert jobs == {job: (pytest.approx(m / 1000, rel=1e-6), pytest.approx(loc / 1000, rel=1e-6))
                    for job, m, loc in HAND.values()}
    assert [j["job_id"] for j in r["top_jobs"]] == ["c1", "b2", "a2", "a1", "b1"]
    # the Scope 2 section and the phase blocks agree: the section's market_kg is each block's headline (no embodied)
    s2 = {p["phase"]: p["market_kg"] for p in r["scope2"]["phases"]}
    assert {p["phase"]: p["emissions_kg"] for p in r["phases"]} == {k: pytest.approx(v, rel=1e-12)
                                                                    for k, v in s2.items()}
    # the equivalences follow the headline
    assert r["equivalences"]["miles_driven"] == pytest.approx(total / r["equivalences"]["kg_per_mile"], rel=1e-9)
    # what stays location-based says so
    assert "location-based under a market-based headline" in r["whatif"]["note"]
    assert r["whatif"]["actual_kg"] == pytest.approx(5.280, rel=1e-6)
    assert "Headline basis: Scope 2 market-based" in r["method"]["statement"]


def test_location_basis_output_is_unchanged_and_market_changes_only_headline_figures(scenario, capsys) -> None:  # type: ignore[no-untyped-def]
    """The location basis (the default) writes exactly what it wrote before the market basis existed: no new key, no
    market-only bound (docs/examples and the demo's reports are compared byte for byte by their own tests). The
    market basis changes only the headline figures (each then with location_kg beside it) and the labels saying so."""
    outs = {}
    for basis in ("default", "location"):
        extra = () if basis == "default" else ("--scope2-basis", "location")
        for fmt in ("json", "md", "csv", "html"):
            assert main(["report", "--db", str(scenario[0]), "--config", str(scenario[2]), "--month", "2024-03",
                         "--format", fmt, *extra]) == 0
            outs[(basis, fmt)] = capsys.readouterr().out
    for fmt in ("json", "md", "csv", "html"):
        strip = [line for line in outs[("location", fmt)].splitlines() if "enerated" not in line
                 and "generated_at" not in line]
        assert strip == [line for line in outs[("default", fmt)].splitlines() if "enerated" not in line
                         and "generated_at" not in line], fmt
    loc = json.loads(outs[("location", "json")])
    assert all("location_kg" not in json.dumps(v) for k, v in loc.items() if k != "scope2")
    assert not {(b["input"], b["quality"]) for b in loc["uncertainty"]["bounds"]} & {
        ("intensity", "contractual"), ("intensity", "residual_mix")}
    assert "basis" not in loc["uncertainty"]
    assert "market-based adjustment" not in outs[("location", "md")] + outs[("location", "html")]
    assert "Scope 2 market-based;" not in outs[("location", "md")] + outs[("location", "html")]

    market = _report(scenario, capsys, scenario[2], "--scope2-basis", "market")
    changed: set[str] = set()

    def walk(a, b, path: str) -> None:  # type: ignore[no-untyped-def]
        if isinstance(a, dict) and isinstance(b, dict):
            for k in set(a) | set(b):
                walk(a.get(k), b.get(k), f"{path}.{k}")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for x, y in zip(a, b, strict=True):
                walk(x, y, f"{path}[]")
        elif a != b:
            changed.add(path)
    walk(loc, market, "")
    changed -= {".generated_at"}
    unexpected = {p for p in changed if not p.startswith((".top_jobs", ".projects", ".uncertainty", ".daily"))
                  and p not in {".total.emissions_kg", ".total.location_kg", ".phases[].emissions_kg",
                                ".phases[].location_kg", ".equivalences.miles_driven",
                                ".equivalences.homes_energy_years", ".equivalences.sentence", ".method.statement",
                                ".scope2.basis", ".scope2.statement", ".whatif.note", ".time_shift.note"}}
    assert not unexpected, unexpected
    # the projects and top jobs may be re-ranked, never changed otherwise: the same rows, location_kg added
    for key, name in (("projects", "project"), ("top_jobs", "job_id")):
        assert {x[name]: {k: v for k, v in x.items() if k not in ("emissions_kg", "location_kg", "phases")}
                for x in market[key]} == {x[name]: {k: v for k, v in x.items() if k not in ("emissions_kg", "phases")}
                                          for x in loc[key]}
        assert {x[name]: x["location_kg"] for x in market[key]} == {x[name]: x["emissions_kg"] for x in loc[key]}
    assert [p["emissions_kg"] for p in loc["phases"]] == [p["location_kg"] for p in market["phases"]]
    assert loc["total"]["emissions_kg"] == market["total"]["location_kg"]


def test_market_basis_previous_window_by_hand(scenario, capsys) -> None:  # type: ignore[no-untyped-def]
    """The window before gets its own market-based figures. Window 05:00-10:00 of March 1st (a1, b1, c1 run; b2
    and a2 ended at 05:00), the window before 00:00-05:00 (all five). Monthly matching: jz 5/18 at the FR residual
    mix 60 g, de1 3/6 at 400 g (no DE residual mix), cloud at 250 g, as over the whole month.
      this window:  alpha a1 6 kWh x 5/18 x 60 = 100 g; beta b1 3 x 5/18 x 60 = 50 + c1 3.3 x 250 = 825: 875 g
      before:       alpha a1 100 + a2 2 x 3/6 x 400 = 400: 500 g; beta b1 50 + b2 4 x 3/6 x 400 = 800 + c1 825: 1,675 g
      location-based before: alpha 6 x 50 + 2 x 400 = 1,100 g; beta 3 x 50 + 4 x 400 + 3.3 x 300 = 2,740 g"""
    code = main(["report", "--db", str(scenario[0]), "--config", str(scenario[2]), "--start", "2024-03-01T05:00:00Z",
                 "--end", "2024-03-01T10:00:00Z", "--format", "json", "--scope2-basis", "market"])
    out = capsys.readouterr()
    assert code == 0, out.err
    r = json.loads(out.out)
    projects = {p["project"]: p for p in r["projects"]}
    assert projects["alpha"]["emissions_kg"] == pytest.approx(0.100, rel=1e-6)
    assert projects["beta"]["emissions_kg"] == pytest.approx(0.875, rel=1e-6)
    assert projects["alpha"]["previous_emissions_kg"] == pytest.approx(0.500, rel=1e-6)
    assert projects["beta"]["previous_emissions_kg"] == pytest.approx(1.675, rel=1e-6)
    assert projects["beta"]["change_pct"] == pytest.approx((0.875 - 1.675) / 1.675, rel=1e-6)
    assert r["previous"]["emissions_kg"] == pytest.approx(2.175, rel=1e-6)
    assert r["previous"]["location_kg"] == pytest.approx(1.100 + 2.740, rel=1e-6)
    assert r["change"]["emissions_pct"] == pytest.approx((0.975 - 2.175) / 2.175, rel=1e-6)


def test_market_band_by_hand(scenario) -> None:  # type: ignore[no-untyped-def]
    """The band of the market-based total (3,150 g) by hand, from the shipped bounds: counter energy +/-5 %, hourly
    intensity +/-10 %, declared PUE +/-5 % (jz 1.2, cloud 1.1), de1's default PUE 1.0 (0, +58 %), the residual mix
    +/-30 %, instruments' factors exact. Covered shares stay as matched (jz 13/18, de1 3/6, cloud all).
      jz low:    15 kWh x 0.95 x (1.2 x 0.95) = 16.245 kWh, 5/18 of it at 60 x 0.7 g/kWh      =   189.525 g
      jz high:   15 x 1.05 x 1.26 = 19.845 kWh, 5/18 at 60 x 1.3                            =   429.975 g
      de1 low:   6 x 0.95 = 5.7 kWh (PUE 1.0 at its low bound), 3/6 at 400 x 0.9 (location-based fallback)
                                                                                          = 1,026 g
      de1 high:  6 x 1.05 x 1.58 = 9.954 kWh, 3/6 at 400 x 1.1                               = 2,189.88 g
      cloud low: 6 x 0.95 x (1.1 x 0.95) = 5.9565 kWh at 250 (supplier factor, exact)        = 1,489.125 g
      cloud high: 6 x 1.05 x 1.155 = 7.2765 kWh at 250                                       = 1,819.125 g
      band: 2,704.65 g to 4,438.98 g"""
    from wattprint.pipeline.report.uncertainty import bound
    e, i, r_ = bound("energy", "counter"), bound("intensity", "hourly"), bound("intensity", "residual_mix")
    d, u, c = bound("pue", "declared"), bound("pue", "default"), bound("intensity", "contractual")
    assert (c.low_pct, c.high_pct) == (0.0, 0.0)

    def side(s: str) -> float:
        fe, fi, fr, fd, fu = (1 + getattr(b, s) for b in (e, i, r_, d, u))
        jz = 15 * fe * (1.2 * fd) * 5 / 18 * 60 * fr
        de1 = 6 * fe * max(1.0, 1.0 * fu) * 3 / 6 * 400 * fi
        cloud = 6 * fe * (1.1 * fd) * 250
        return (jz + de1 + cloud) / 1000
    assert side("low_pct") == pytest.approx(2.70465, rel=1e-9) and side("high_pct") == pytest.approx(4.43898, rel=1e-9)
    reports = [_built(scenario) for _ in range(2)]
    u1 = reports[0].uncertainty
    assert u1 is not None and u1.basis == "market"
    assert u1.total.emissions_kg == reports[0].total.emissions_kg == pytest.approx(3.150, rel=1e-6)
    assert u1.total.low_kg == pytest.approx(side("low_pct"), rel=1e-6)
    assert u1.total.high_kg == pytest.approx(side("high_pct"), rel=1e-6)
    assert reports[1].uncertainty == u1                      # the same inputs, the same band, bit for bit
    for b in (u1.total, *u1.phases, *u1.projects):
        assert b.low_kg <= b.emissions_kg <= b.high_kg, b
    # per project: alpha has 12 of jz's 18 kWh and 2 of de1's 6
    alpha = next(b for b in u1.projects if b.name == "alpha")
    assert alpha.low_kg == pytest.approx((189.525 * 12 / 18 + 1026 * 2 / 6) / 1000, rel=1e-6)
    assert alpha.high_kg == pytest.approx((429.975 * 12 / 18 + 2189.88 * 2 / 6) / 1000, rel=1e-6)
    assert {(b.input, b.quality) for b in u1.bounds} >= {("intensity", "contractual"), ("intensity", "residual_mix")}


def _built(scenario):  # type: ignore[no-untyped-def]
    from wattprint.pipeline.report.compute import build_report
    from wattprint.pipeline.report.scope import ReportOptions
    from wattprint.pipeline.report.window import month

    con = db.connect(scenario[0], read_only=True)
    try:
        return build_report(con, load_settings(str(scenario[2])),
                            ReportOptions(window=month("2024-03"), generated_at=datetime(2024, 4, 1, tzinfo=UTC),
                                          scope2_basis="market"))
    finally:
        con.close()


def test_market_basis_is_labelled_in_every_format(scenario, capsys) -> None:  # type: ignore[no-untyped-def]
    for fmt in ("md", "html"):
        assert main(["report", "--db", str(scenario[0]), "--config", str(scenario[2]), "--month", "2024-03",
                     "--format", fmt, "--scope2-basis", "market"]) == 0
        out = capsys.readouterr().out
        assert "Scope 2 market-based; location-based" in out and "market-based adjustment" in out, fmt
        assert "Location-based (kg)" in out, fmt


def test_a_project_report_shares_covered_energy_with_the_fleet(scenario, capsys) -> None:  # type: ignore[no-untyped-def]
    """The project's report matches instruments against the whole fleet, not against the project alone."""
    r = _report(scenario, capsys, scenario[2], "--project", "alpha")
    assert r["scope2"]["total"]["market_kg"] == pytest.approx(0.6, rel=1e-3)
    assert r["scope2"]["total"]["covered_kwh"] == pytest.approx(12 * 13 / 18 + 2 * 3 / 6, rel=1e-3)


def test_every_format_shows_both_bases(scenario, capsys) -> None:  # type: ignore[no-untyped-def]
    for fmt in ("md", "csv", "html"):
        assert main(["report", "--db", str(scenario[0]), "--config", str(scenario[2]), "--month", "2024-03",
                     "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert ("market_kg" if fmt == "csv" else "market-based") in out.lower() and "ppa-wind" in out, fmt


# -- the matching itself --------------------------------------------------------------------------------------

def _inst(name: str, kind: str, clusters: tuple[str, ...], mwh: float | None, order: int,
          start: datetime = T0, end: datetime = datetime(2024, 4, 1, tzinfo=UTC)) -> Instrument:
    return Instrument(name=name, kind=kind, clusters=clusters, start=start, end=end, mwh=mwh, g_per_kwh=0.0,
                      order=order)


def test_match_never_beyond_quantity_nor_consumption_and_never_carries_over() -> None:
    months = periods(T0, datetime(2024, 5, 1, tzinfo=UTC), monthly=True)
    april = datetime(2024, 4, 1, tzinfo=UTC)
    mwh = 3.6e9
    consumption = {("a", T0): 2 * mwh, ("b", T0): 6 * mwh, ("a", april): 1 * mwh}
    # a two-month certificate batch of 6 MWh: 3 MWh a month (by hours: March 744 h, April 720 h)
    cert = _inst("cert", "certificate", ("a", "b"), 6.0, 0, end=datetime(2024, 5, 1, tzinfo=UTC))
    ppa = _inst("ppa", "ppa", ("b",), 5.0, 1)
    m = match([cert, ppa], consumption, months)
    march_allot = 6.0 * 744 / (744 + 720)
    april_allot = 6.0 * 720 / (744 + 720)
    # the PPA first: 5 of b's 6 MWh; then the certificates: min(allotment, 2 + 1 left) in March, min(., 1) in April
    assert m.applied_j["ppa"] == pytest.approx(5 * mwh)
    assert m.applied_j["cert"] == pytest.approx((min(march_allot, 3.0) + min(april_allot, 1.0)) * mwh)
    assert m.unused_j["cert"] == pytest.approx((march_allot - min(march_allot, 3.0) + april_allot - 1.0) * mwh)
    # pro rata within the scope: in March the certificates cover a and b in proportion to what was left (2 : 1)
    march = {c.cluster: c.energy_j for c in m.covers if c.instrument == "cert" and c.period == T0}
    assert march["a"] / march["b"] == pytest.approx(2.0)
    for (cluster, period), e in consumption.items():
        assert sum(c.energy_j for c in m.covers if (c.cluster, c.period) == (cluster, period)) <= e * (1 + 1e-12)


def test_hourly_periods_are_hours() -> None:
    assert len(periods(T0, T0 + timedelta(hours=5), monthly=False)) == 5
    assert periods(T0, datetime(2024, 3, 15, tzinfo=UTC), monthly=True) == [(T0, datetime(2024, 4, 1, tzinfo=UTC))]


# -- refused at load --------------------------------------------------------------------------------------

def _load(text: str) -> None:
    load_text(CLUSTERS + text, "w.yaml")


def test_over_claimed_certificates_are_refused_with_their_names() -> None:
    text = SCOPE2.replace("registry_id: GO-DE-7", "registry_id: GO-FR-1")
    with pytest.raises(InputError) as e:
        _load(text)
    msg = str(e.value)
    assert msg.startswith("w.yaml:12: scope2.instruments[2]: over-claimed") and "'go-fr'" in msg and "'go-de'" in msg


def test_overlapping_supplier_factors_are_refused() -> None:
    text = SCOPE2 + """\
    - {name: aws-2024h2, kind: supplier, clusters: [cloud], start: 2024-07-01, end: 2025-01-01, mwh: all,
       g_per_kwh: 200}
""".replace("    - {", "    - {", 1)
    text = text.replace("  residual_mix:\n    - {zone: FR, year: 2023, g_per_kwh: 60, source: \"test residual mix\"}\n",
                        "") + "  residual_mix: []\n"
    with pytest.raises(InputError) as e:
        _load(text.replace("  residual_mix: []\n", "", 1) if False else text)
    assert "overlapping: instruments 'aws-mix' and 'aws-2024h2' both claim all consumption of cloud" in str(e.value)


@pytest.mark.parametrize(("old", "new", "want"), [
    ("kind: ppa,", "kind: pppa,", "scope2.instruments[1].kind: unknown kind 'pppa' (did you mean 'ppa'?)"),
    ("mwh: 0.009", "mwh: all", "scope2.instruments[1].mwh: over-claimed: a ppa covers a finite quantity"),
    ("clusters: [jz]", "clusters: [jzz]", "scope2.instruments[1].clusters: 'jzz' is not under clusters"),
    ("start: 2024-03-01, end: 2024-04-01, mwh: 0.009", "start: 2024-03-05, end: 2024-04-01, mwh: 0.009",
     "scope2.instruments[1].start: 2024-03-05T00:00:00Z is not the start of a UTC month"),
    ("mwh: 0.009", "mwh: -1", "scope2.instruments[1].mwh: expected a number > 0.0, got -1"),
    ("name: ppa-wind", "name: go-fr", "scope2.instruments[1].name: instrument name 'go-fr' is used twice"),
    ("g_per_kwh: 60", "g_per_kwh: sixty", "scope2.residual_mix[0].g_per_kwh: expected a number >= 0.0"),
    ("matching: monthly", "matching: daily", "scope2.matching: unknown matching 'daily'"),
])
def test_bad_instruments_name_file_line_and_key(old: str, new: str, want: str) -> None:
    assert old in SCOPE2
    with pytest.raises(InputError) as e:
        _load(SCOPE2.replace(old, new, 1))
    assert want in str(e.value) and str(e.value).startswith("w.yaml:"), str(e.value)


def test_an_instruments_file_and_its_errors(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "instruments.yaml").write_text(SCOPE2.replace("scope2:\n", "").replace("\n  ", "\n")
                                               .removeprefix("  "), encoding="utf-8")
    cfg = tmp_path / "w.yaml"
    cfg.write_text(CLUSTERS + "scope2: instruments.yaml\n", encoding="utf-8")
    assert [i.name for i in load(cfg).scope2.instruments] == ["go-fr", "ppa-wind", "go-de", "aws-mix"]
    (tmp_path / "instruments.yaml").write_text("instruments:\n  - {name: x, kind: ppa, zone: XX}\n", encoding="utf-8")
    assert main(["report", "--config", str(cfg), "--db", str(tmp_path / "none.duckdb"), "--month", "2024-03"]) == 2
    err = capsys.readouterr().err
    assert "instruments.yaml:2: scope2.instruments[0].zone: no configured cluster is in zone XX" in err
    assert "Traceback" not in err


def test_scope2_section_in_chromium(scenario, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The page with instruments, residual mixes and a warning renders and lays out in headless Chromium."""
    from .test_report_html import check_in_chromium

    check_in_chromium(_report(scenario, capsys, scenario[2]), "scope2", tmp_path)


def test_hourly_matching_through_a_whole_report(scenario, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """24/7-style matching against monthly, through `wattprint report`: a PPA on jz for the first 5 hours of March,
    10 kWh, so 2 kWh allotted to each of its hours. jz draws (1,000 + 500) W x PUE 1.2 = 1.8 kWh each hour for 10 h.
      hourly:  hours 0-4 covered 1.8 kWh each (0.2 kWh unused each: 1 kWh), hours 5-9 not covered:
               9 kWh at the FR residual mix 60 g/kWh = 540 g
      monthly: the month's allotment is the whole 10 kWh against jz's 18 kWh: 8 kWh x 60 = 480 g"""
    body = ("scope2:\n  matching: MATCHING\n  instruments:\n"
            "    - {name: ppa-morning, kind: ppa, clusters: [jz], start: '2024-03-01T00:00:00Z', "
            "end: 'END', mwh: 0.010, g_per_kwh: 0}\n"
            "  residual_mix:\n    - {zone: FR, year: 2024, g_per_kwh: 60, source: test}\n")
    got = {}
    for m, end in (("hourly", "2024-03-01T05:00:00Z"), ("monthly", "2024-04-01")):
        cfg = tmp_path / f"{m}.yaml"
        cfg.write_text(CLUSTERS + body.replace("MATCHING", m).replace("END", end), encoding="utf-8")
        s2 = _report(scenario, capsys, cfg)["scope2"]
        jz = {u["name"]: u for u in s2["instruments"]}["ppa-morning"]
        got[m] = (s2, jz)
    s2, ppa = got["hourly"]
    assert s2["matching"] == "hourly"
    assert ppa["applied_kwh"] == pytest.approx(5 * 1.8, rel=1e-3) and ppa["unused_kwh"] == pytest.approx(1, rel=1e-3)
    jz_rest_g = 5 * 1.8 * 60
    assert s2["total"]["market_kg"] == pytest.approx((jz_rest_g + 6 * 400 + 6.6 * 300) / 1000, rel=1e-3)
    s2m, ppa_m = got["monthly"]
    assert ppa_m["applied_kwh"] == pytest.approx(10, rel=1e-3)
    assert s2m["total"]["market_kg"] == pytest.approx((8 * 60 + 6 * 400 + 6.6 * 300) / 1000, rel=1e-3)
    # the same electricity, the same location-based figure either way
    assert s2["total"]["location_kg"] == pytest.approx(s2m["total"]["location_kg"], rel=1e-12)


def test_market_basis_page_in_chromium(scenario, capsys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The page of a market-based headline (the location-based columns and the adjustment line added) lays out in
    headless Chromium as the location-based one does."""
    from .test_report_html import check_in_chromium

    check_in_chromium(_report(scenario, capsys, scenario[2], "--scope2-basis", "market"), "scope2-market", tmp_path)
