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

from .modelkit import add_series

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
    for job, project, phase, cluster, node, watts, minutes in JOBS:
        labels = {"cluster": cluster, "hostname": node, "gpu": "0", "uuid": f"GPU-{node}", "model": "NVIDIA A100"}
        pts = [(float(m), m * 60 * watts) for m in range(0, minutes + 1, 5)]
        add_series(con, "wattprint", "gpu_energy", labels, pts)
        add_series(con, "wattprint", "job_energy", {**labels, "job_id": job}, pts)
        con.execute("INSERT INTO jobs (cluster, job_id, project, phase, start_ts, end_ts, source, origin)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'test', 'test')",
                    [cluster, job, project, phase, T0, T0 + timedelta(minutes=minutes)])
        con.execute("INSERT INTO job_nodes VALUES (?, ?, ?, 1)", [cluster, job, node])
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
    assert r["scope2"]["basis"] == "market"
    card = tmp_path / "README.md"
    assert main(["report", "--db", str(scenario[0]), "--config", str(scenario[2]), "--month", "2024-03",
                 "--project", "alpha", "--format", "model-card", "--out", str(card), "--scope2-basis", "market",
                 "-q"]) == 0
    text = card.read_text()
    assert "market-based" in text and "emissions: 600.0" in text.replace(",", "")


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
