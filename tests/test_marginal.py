"""Marginal beside average (issue 18 item 2): the two intensity signals stored side by side, and the report's marginal
section (report/marginal.py, docs/methodology.md section 11), on real DuckDB files and the real import path.

The scenario: March 2024, GPU jobs at constant power, no idle or host energy (each job's electricity is its GPU
energy x its cluster's PUE), average intensity every hour (DE 400, FR 50 g/kWh), and a WattTime-like co2_moer series
for DE only, 5-minute points read by the real watttime-json parser (lbs/MWh x 0.45359237 = g/kWh):

    cluster  zone  PUE   jobs (1 GPU each)                                 electricity per hour
    de1      DE    1.25  a1 alpha pretraining 1000 W hours 0-3             1.25 kWh
                         b1 beta  finetuning   500 W hours 0-2             0.625 kWh
    fr1      FR    none  c1 beta  evaluation   800 W hours 0-1             0.8 kWh

    DE co2_moer  hour 0: 12 points of 1,000 lbs/MWh           covered 3,600 s, mean 1,000
                 hour 1: 12 points of 900, 910, ..., 1,010     covered 3,600 s, mean 955
                 hour 2: 6 points of 1,100 (02:00-02:30)      covered 1,800 s, mean 1,100: half the hour counts
                 hour 3: none                                 not covered (no fallback)

Hand computation: energy 1.875 x 3 + 1.25 (DE) + 1.6 (FR) = 8.475 kWh; covered 1.875 x (1 + 1 + 0.5) = 4.6875 kWh;
marginal grams 1.875 x (1000 + 955 + 0.5 x 1100) x 0.45359237.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from jsonschema import Draft202012Validator

from tests.conftest import REPO
from wattprint.pipeline import db
from wattprint.pipeline.cli import main
from wattprint.pipeline.errors import InputError
from wattprint.pipeline.model import rebuild
from wattprint.pipeline.records import IntensityPoint
from wattprint.pipeline.report import tables
from wattprint.pipeline.report.compute import build_report
from wattprint.pipeline.report.html import render as html
from wattprint.pipeline.report.markdown import render as markdown
from wattprint.pipeline.report.scope import ReportOptions
from wattprint.pipeline.report.types import Report
from wattprint.pipeline.report.types.marginal import LABEL
from wattprint.pipeline.report.window import month
from wattprint.pipeline.settings import load_settings
from wattprint.pipeline.sources.intensity import check_points, parse
from wattprint.pipeline.store import SIGNAL_TABLES, write_intensity

from .modelkit import add_steady_job

T0 = datetime(2024, 3, 1, tzinfo=UTC)
LB = 0.45359237                      # g/kWh per lbs/MWh
CONFIG = """\
clusters:
  de1: {zone: DE, pue: 1.25, nodes: ["de*"]}
  fr1: {zone: FR, nodes: ["fr*"]}
default_cluster: de1
"""
# job, project, phase, cluster, node, watts, minutes
JOBS = (("a1", "alpha", "pretraining", "de1", "de01", 1000.0, 240),
        ("b1", "beta", "finetuning", "de1", "de02", 500.0, 180),
        ("c1", "beta", "evaluation", "fr1", "fr01", 800.0, 120))
AVERAGE = {"DE": 400.0, "FR": 50.0}
MOER_LBS = [1000.0] * 12 + [900.0 + 10 * i for i in range(12)] + [1100.0] * 6    # 5-minute points from T0
GENERATED = datetime(2024, 4, 1, tzinfo=UTC)

E_HOUR = {"alpha": 1.25, "beta_de": 0.625}           # kWh per hour on de1 (PUE 1.25)
G = [1000.0 * LB, 955.0 * LB, 1100.0 * LB]            # the hours' marginal rates, g/kWh
COVER = [1.0, 1.0, 0.5]                               # the hours' covered parts


def watttime_json(path: Path, zone: str, start: datetime, values: list[float]) -> Path:
    """A WattTime v3 /v3/historical response (co2_moer, lbs/MWh, 5-minute points)."""
    data = [{"point_time": (start + timedelta(minutes=5 * i)).isoformat().replace("+00:00", "Z"), "value": v}
            for i, v in enumerate(values)]
    path.write_text(json.dumps({"data": data, "meta": {
        "region": zone, "units": "lbs_co2_per_mwh", "signal_type": "co2_moer", "data_point_period_seconds": 300,
        "model": {"date": "2024-01-01", "type": "binned_regression"}, "generated_at_period_seconds": 300}}),
        encoding="utf-8")
    return path


def average_points(zone: str, g: float, hours: int = 24) -> list[IntensityPoint]:
    return [IntensityPoint(zone=zone, start=T0 + timedelta(hours=h), end=T0 + timedelta(hours=h + 1), g_per_kwh=g,
                           basis="lifecycle", source="csv", origin=f"avg.csv:{h + 2}") for h in range(hours)]


def import_moer(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    points = check_points(parse(path, "watttime-json").points)      # the real parser, as `intensity import`
    with db.transaction(con):
        write_intensity(con, points)


def snapshot(con: duckdb.DuckDBPyConnection, signal: str) -> dict[str, list[tuple[Any, ...]]]:
    """The signal's stored points and hours (store.SIGNAL_TABLES), as rows without their import time."""
    points, hourly = SIGNAL_TABLES[signal]
    return {k: con.execute(f"SELECT * EXCLUDE (imported_at) FROM {t} ORDER BY ALL").fetchall()
            for k, t in (("points", points), ("hourly", hourly))}


def report(con: duckdb.DuckDBPyConnection, config: Path, project: str | None = None,
           phases: tuple[str, ...] = ()) -> Report:
    return build_report(con, load_settings(str(config)), ReportOptions(
        window=month("2024-03"), project=project, phases=phases, generated_at=GENERATED))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The database with average intensity only (its reports and intensity tables kept), then the co2_moer import."""
    tmp = tmp_path_factory.mktemp("marginal")
    config = tmp / "wattprint.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    path = tmp / "m.duckdb"
    con = db.connect(path)
    for job in JOBS:
        add_steady_job(con, *job)
    settings = load_settings(str(config))
    with db.transaction(con):
        for zone, g in AVERAGE.items():
            write_intensity(con, average_points(zone, g))
        rebuild(con, settings.build_settings())
    con.execute("SET threads = 1")
    before = {"fleet": report(con, config), "alpha": report(con, config, "alpha"),
              "average": snapshot(con, "average"),
              "fct": con.execute("SELECT * FROM fct_job_gpu_hour ORDER BY ALL").fetchall()}
    import_moer(con, watttime_json(tmp / "moer.json", "DE", T0, MOER_LBS))
    with db.transaction(con):
        rebuild(con, settings.build_settings())
    con.close()
    return {"path": path, "config": config, "tmp": tmp, "before": before}


@pytest.fixture(scope="module")
def after(scenario: dict[str, Any]) -> dict[str, Any]:
    con = db.connect(scenario["path"], read_only=True)
    con.execute("SET threads = 1")
    try:
        return {"fleet": report(con, scenario["config"]), "alpha": report(con, scenario["config"], "alpha"),
                "evaluation": report(con, scenario["config"], phases=("evaluation",)),
                "average": snapshot(con, "average"), "marginal": snapshot(con, "marginal"),
                "fct": con.execute("SELECT * FROM fct_job_gpu_hour ORDER BY ALL").fetchall()}
    finally:
        con.close()


# -- storage: two signals, side by side ---------------------------------------------------------------------

def test_marginal_import_stores_beside_average_and_never_changes_it(scenario: dict[str, Any],
                                                                   after: dict[str, Any]) -> None:
    assert after["average"] == scenario["before"]["average"]            # not a byte of the average signal moved
    hourly = [(r[0], int((r[1] - T0).total_seconds() // 3600), r[2], r[3], r[4], r[6]) for r in
              after["marginal"]["hourly"]]    # zone, hour, g/kWh, basis, source, covered_s
    assert [(z, h, b, s, c) for z, h, _, b, s, c in hourly] == [
        ("DE", 0, "marginal", "watttime", 3600), ("DE", 1, "marginal", "watttime", 3600),
        ("DE", 2, "marginal", "watttime", 1800)]
    for (_, _, g, *_), want in zip(hourly, G, strict=True):
        assert g == pytest.approx(want, rel=1e-12)
    assert len(after["marginal"]["points"]) == len(MOER_LBS)
    # the same zone-hours hold both signals
    assert {(r[0], r[1]) for r in after["average"]["hourly"]} >= {(r[0], r[1]) for r in after["marginal"]["hourly"]}


def test_headline_and_results_unchanged_by_marginal_data(scenario: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["fct"] == scenario["before"]["fct"]
    for name in ("fleet", "alpha"):
        old, new = scenario["before"][name].to_dict(), after[name].to_dict()
        assert "marginal" not in old and "marginal" in new
        assert list(new) == [k for k in new if k in old or k == "marginal"]
        assert {k: v for k, v in new.items() if k != "marginal"} == old


def test_average_import_never_changes_marginal(scenario: dict[str, Any], after: dict[str, Any]) -> None:
    path = scenario["tmp"] / "copy.duckdb"
    shutil.copy(scenario["path"], path)
    con = db.connect(path)
    try:
        with db.transaction(con):     # an average import over the marginal hours, another value: replaces average only
            write_intensity(con, average_points("DE", 420.0, hours=4))
        assert snapshot(con, "marginal") == after["marginal"]
        got = con.execute("SELECT g_per_kwh FROM intensity_hourly WHERE zone = 'DE' AND hour_ts < ?"
                          " ORDER BY hour_ts", [T0 + timedelta(hours=4)]).fetchall()
        assert got == [(420.0,)] * 4
        # bases still never mix within a signal: a direct import over part of a lifecycle hour is refused
        with pytest.raises(InputError, match="bases do not mix"), db.transaction(con):
            write_intensity(con, [IntensityPoint(zone="DE", start=T0, end=T0 + timedelta(minutes=30), g_per_kwh=1.0,
                                                 basis="direct", source="csv", origin="d.csv:2")])
    finally:
        con.close()


def test_cli_import_of_watttime_json_says_where_it_went_and_moves_no_result(
        scenario: dict[str, Any], after: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario["tmp"] / "cli.duckdb"
    shutil.copy(scenario["path"], path)
    moer = watttime_json(scenario["tmp"] / "cli.json", "ignored", T0 + timedelta(hours=3), [800.0] * 12)
    code = main(["intensity", "import", str(moer), "--format", "watttime-json", "--zone", "de", "--db", str(path),
                 "--config", str(scenario["config"])])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "marginal signal" in out.out and "never in the headline" in out.out
    assert "reports show it only in their marginal section" in out.err          # the parser's MOER warning
    con = db.connect(path)
    try:
        assert con.execute("SELECT * FROM fct_job_gpu_hour ORDER BY ALL").fetchall() == after["fct"]
        assert snapshot(con, "average") == after["average"]
        assert con.execute("SELECT count(*), max(hour_ts) FROM marginal_hourly WHERE zone = 'DE'").fetchall() == [
            (4, T0 + timedelta(hours=3))]
    finally:
        con.close()


def test_one_import_may_hold_both_signals_over_the_same_time() -> None:
    pts = average_points("DE", 400.0, hours=1) + [
        IntensityPoint(zone="DE", start=T0, end=T0 + timedelta(hours=1), g_per_kwh=450.0, basis="marginal",
                       source="watttime", origin="m.json: data[0]")]
    assert len(check_points(pts)) == 2
    con = db.connect(":memory:")
    try:
        write_intensity(con, check_points(pts))
        assert con.execute("SELECT 'average', g_per_kwh FROM intensity_hourly UNION ALL"
                           " SELECT 'marginal', g_per_kwh FROM marginal_hourly ORDER BY ALL").fetchall() == [
            ("average", 400.0), ("marginal", 450.0)]
    finally:
        con.close()


# -- the report's marginal section ---------------------------------------------------------------------------

def test_marginal_totals_equal_the_hand_computation(after: dict[str, Any]) -> None:
    m = after["fleet"].marginal
    assert m is not None and m.label == LABEL
    t = m.total
    de = sum(E_HOUR.values())
    grams = de * sum(g * c for g, c in zip(G, COVER, strict=True))
    assert t.energy_kwh == pytest.approx(de * 3 + 1.25 + 1.6, rel=1e-9)
    assert t.covered_kwh == pytest.approx(de * 2.5, rel=1e-9)
    assert t.covered_share == pytest.approx(de * 2.5 / (de * 3 + 1.25 + 1.6), rel=1e-9)
    assert t.marginal_kg == pytest.approx(grams / 1000, rel=1e-9)
    assert t.marginal_g_per_kwh == pytest.approx(grams / (de * 2.5), rel=1e-9)
    assert t.sources == ("watttime",)
    # the same electricity Scope 2 prices
    assert after["fleet"].scope2 is not None
    assert t.energy_kwh == pytest.approx(after["fleet"].scope2.total.energy_kwh, rel=1e-12)
    projects = {p.project: p for p in m.projects}
    assert projects["alpha"].marginal_kg == pytest.approx(
        E_HOUR["alpha"] * sum(g * c for g, c in zip(G, COVER, strict=True)) / 1000, rel=1e-9)
    assert projects["beta"].covered_kwh == pytest.approx(E_HOUR["beta_de"] * 2.5, rel=1e-9)
    assert projects["beta"].covered_share == pytest.approx(0.625 * 2.5 / (0.625 * 3 + 1.6), rel=1e-9)
    phases = {p.phase: p for p in m.phases}
    assert phases["evaluation"].covered_kwh == 0 and phases["evaluation"].marginal_g_per_kwh is None
    assert phases["evaluation"].sources == () and phases["evaluation"].energy_kwh == pytest.approx(1.6, rel=1e-9)
    clusters = {c.cluster: c for c in m.clusters}
    assert (clusters["de1"].zone, clusters["de1"].marginal_hours) == ("DE", 3)
    assert (clusters["fr1"].zone, clusters["fr1"].marginal_hours, clusters["fr1"].covered_kwh) == ("FR", 0, 0)
    # never in the headline: the total is the average-priced one
    assert after["fleet"].total.emissions_kg == pytest.approx(((de * 3 + 1.25) * 400 + 1.6 * 50) / 1000, rel=1e-9)


def test_project_report_has_itself_as_the_only_project(after: dict[str, Any]) -> None:
    m = after["alpha"].marginal
    assert m is not None and [p.project for p in m.projects] == ["alpha"]
    assert m.total.covered_share == pytest.approx(2.5 / 4, rel=1e-9)


def test_no_marginal_key_where_the_scope_has_no_marginal_data(after: dict[str, Any]) -> None:
    r = after["evaluation"]                      # c1 ran in FR only: no marginal point in its zones
    assert r.marginal is None and "marginal" not in r.to_dict()
    assert "Marginal" not in markdown(r) and 'id="marginal"' not in html(r)
    assert not any(row[0] == "marginal" for row in tables.rows(r))


def test_marginal_data_elsewhere_in_time_gives_zero_coverage(scenario: dict[str, Any]) -> None:
    path = scenario["tmp"] / "zero.duckdb"
    shutil.copy(scenario["path"], path)
    con = db.connect(path)
    try:
        import_moer(con, watttime_json(scenario["tmp"] / "fr.json", "FR", T0 + timedelta(hours=20), [700.0] * 12))
        m = report(con, scenario["config"], phases=("evaluation",)).marginal
    finally:
        con.close()
    assert m is not None and m.total.covered_kwh == 0 and m.total.marginal_kg == 0
    assert m.total.marginal_g_per_kwh is None and m.clusters[0].marginal_hours == 1


def test_formats_show_the_section_labelled_and_the_json_validates(after: dict[str, Any]) -> None:
    r = after["fleet"]
    d = json.loads(json.dumps(r.to_dict()))
    schema = json.loads((REPO / "wattprint/pipeline/report/report-v1.schema.json").read_text(encoding="utf-8"))
    assert not list(Draft202012Validator(schema).iter_errors(d))
    assert Report.from_dict(d) == r
    m = d["marginal"]
    md = markdown(r)
    assert "## Marginal emissions (consequential view)" in md
    assert "**Marginal (consequential) \u2014 not comparable with and not added to the location-based total.**" in md
    assert "| **total** | 8.5 | 4.7 | 55.3 % |" in md
    page = html(r)
    assert '<section id="marginal">' in page and "not added to the location-based total" in page
    csv = {(s, i, f): (v, u) for s, i, f, v, u in tables.rows(r) if s == "marginal"}
    assert csv[("marginal", "", "total.marginal_kg")] == (m["total"]["marginal_kg"], "kgCO2eq")
    assert csv[("marginal", "", "total.covered_share")] == (m["total"]["covered_share"], "fraction")
    assert csv[("marginal", "", "total.marginal_g_per_kwh")][1] == "gCO2eq/kWh"
    assert csv[("marginal", "de1", "clusters.marginal_hours")] == (3, "hours")
    assert csv[("marginal", "alpha", "projects.covered_kwh")] == (m["projects"][0]["covered_kwh"], "kWh")


# -- migration 0010 ---------------------------------------------------------------------------------------------

def test_migration_moves_stored_marginal_rows_to_the_marginal_signal(tmp_path: Path) -> None:
    path = tmp_path / "v9.duckdb"
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    for version, name, sql in db.migrations():
        if version <= 9:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    for hour, g, basis, source in ((0, 40.0, "lifecycle", "csv"), (1, 450.0, "marginal", "watttime")):
        for table, end_or_cover in (("intensity_points", T0 + timedelta(hours=hour + 1)), ("intensity_hourly", 3600)):
            cols = "zone, start_ts, end_ts" if table == "intensity_points" else "zone, hour_ts, covered_s"
            con.execute(f"INSERT INTO {table} ({cols}, g_per_kwh, basis, source, is_estimated, origin)"
                        " VALUES ('FR', ?, ?, ?, ?, ?, false, 'old')",
                        [T0 + timedelta(hours=hour), end_or_cover, g, basis, source])
    con.close()
    con = db.connect(path)                                          # applies 0010
    try:
        assert con.execute("SELECT count(*) FROM schema_migrations WHERE version = 10").fetchall() == [(1,)]
        for table, want in (("intensity_points", [("lifecycle", 40.0)]), ("intensity_hourly", [("lifecycle", 40.0)]),
                            ("marginal_points", [("marginal", 450.0)]), ("marginal_hourly", [("marginal", 450.0)])):
            assert con.execute(f"SELECT basis, g_per_kwh FROM {table}").fetchall() == want, table
        assert con.execute("SELECT origin, covered_s FROM marginal_hourly").fetchall() == [("old", 3600)]
        # the old marginal hour no longer stands for average data: an average import there sits beside it
        write_intensity(con, average_points("FR", 41.0, hours=2))
        assert con.execute("SELECT hour_ts, g_per_kwh FROM intensity_hourly ORDER BY hour_ts").fetchall() == [
            (T0, 41.0), (T0 + timedelta(hours=1), 41.0)]
        assert con.execute("SELECT hour_ts, g_per_kwh FROM marginal_hourly").fetchall() == [
            (T0 + timedelta(hours=1), 450.0)]
    finally:
        con.close()
