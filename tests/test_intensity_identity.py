"""Zone identity and partial intensity hours.

1. One zone, one spelling (wattprint/pipeline/zones.py): `fr` in the config prices with imported `FR` hours,
   `FR` and `fr` in one file are an ambiguous duplicate, migration 0004 re-spells zones stored before it.
2. Several imports combine by coverage (intensity_points): an import replaces only the stored time it overlaps,
   each zone-hour is the time-weighted mean of all its points, and only a fully covered hour is `hourly`.
3. The generic CSV's refusal of sub-hourly rows gives advice that works.

The end-to-end tests load a small history into a real Prometheus (backfilled with promtool), run the real CLI
and compare fct_job_gpu_hour and the report with figures computed here from the power and intensities written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.conftest import REPO
from tests.promstack import RunningStore, start_prometheus_with_history
from wattprint.pipeline import config as cfg
from wattprint.pipeline import db
from wattprint.pipeline.cli import build_parser
from wattprint.pipeline.cli.serve_intensity import request as serve_request
from wattprint.pipeline.errors import InputError
from wattprint.pipeline.estimate import compute
from wattprint.pipeline.live import sources
from wattprint.pipeline.live.intensity_server import options
from wattprint.pipeline.records import IntensityPoint
from wattprint.pipeline.sources.intensity import check_points, embedded, parse
from wattprint.pipeline.store import IntensityStoreResult, write_intensity
from wattprint.pipeline.zones import canonical_zone, same_zone

T0 = datetime(2024, 3, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)


def wattprint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=180, env={**os.environ, "PYTHONPATH": str(REPO)})


def refused(res: subprocess.CompletedProcess[str], verb: str, *needles: str) -> str:
    """The one error line of a refused CLI call (exit 2, no traceback), checked for the needles."""
    assert res.returncode == 2, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wattprint {verb}: error: "), res.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# -- 1. the zone rule -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("given", "canonical"), [
    ("FR", "FR"), ("fr", "FR"), (" Fr\t", "FR"),                       # ISO codes: upper case
    ("uk", "GB"), ("UK", "GB"),                                         # the shipped table reads UK as GB
    ("gcp:europe-west1", "gcp:europe-west1"), ("GCP:Europe-West1", "gcp:europe-west1"),   # the table's spelling
    ("aws : us-west-2", "aws:us-west-2"), (" Azure:WestEurope ", "azure:westeurope"),
    ("World", "world"),
    ("us-cal-ciso", "US-CAL-CISO"), ("caiso_north", "CAISO_NORTH"), ("gb-13", "GB-13"),   # not shipped: upper
    ("gcp:mars-central1", "GCP:MARS-CENTRAL1"),
    ("\u212ae", "\u212aE"),        # the Kelvin sign is no K: no Unicode case rule makes it Kenya
    ("", ""),
])
def test_canonical_zone(given: str, canonical: str) -> None:
    assert canonical_zone(given) == canonical
    assert canonical_zone(canonical) == canonical          # idempotent


def test_every_shipped_zone_is_its_own_canonical_spelling() -> None:
    for row in embedded.load():
        assert canonical_zone(row.zone) == row.zone
        assert canonical_zone(row.zone.swapcase()) == row.zone
        assert embedded.lookup(row.zone.upper()) == row
    assert same_zone("fr", " FR") and not same_zone("FR", "FR-COR")


def test_config_zone_is_canonical() -> None:
    c = cfg.load_text("clusters:\n  a: {zone: fr}\n  b: {zone: GCP:Europe-West1}\n  c: {zone: uk}\n"
                      "  d: {zone: us-cal-ciso}\n", "w.yaml")
    assert {n: c.cluster(n).zone for n in "abcd"} == {"a": "FR", "b": "gcp:europe-west1", "c": "GB",
                                                      "d": "US-CAL-CISO"}


def test_estimate_records_the_canonical_zone() -> None:
    given = compute(gpu_model="A100", gpus=1, hours=1, intensity=50, region="fr")
    looked_up = compute(gpu_model="A100", gpus=1, hours=1, region="fr")
    assert given.region == looked_up.region == "FR"


def test_serve_intensity_matches_zones_one_way(tmp_path: Path) -> None:
    conf = tmp_path / "w.yaml"
    conf.write_text("clusters:\n  jz: {zone: fr}\n")
    args = build_parser().parse_args(["serve-intensity", "--config", str(conf), "--source", "annual",
                                      "--zone", "Fr", "--zone", "FR"])
    opts = options(serve_request(args), environ={})
    assert opts.zones == ("FR",) and opts.unserved_clusters == ()
    p = IntensityPoint("FR", T0, T0 + 60 * MIN, 42.0, "lifecycle", "csv")
    assert sources.pick([p], "fr", T0 + MIN, timedelta(hours=1)) == p


# -- 1. ambiguous duplicates and the parsers -------------------------------------------------------------

CSV_HEADER = "timestamp,zone,intensity_g_per_kwh\n"


def test_parsers_give_canonical_zones(tmp_path: Path) -> None:
    f = tmp_path / "z.csv"
    f.write_text(CSV_HEADER + "2024-03-01T00:00:00Z,fr,40\n2024-03-01T01:00:00Z,FR,50\n"
                 "2024-03-01T00:00:00Z,gcp:Europe-West1,60\n")
    assert [(p.zone, p.g_per_kwh) for p in check_points(parse(f, "csv").points)] == [
        ("FR", 40.0), ("FR", 50.0), ("gcp:europe-west1", 60.0)]
    # a row's zone that is --zone spelled another way is the same zone
    g = tmp_path / "g.csv"
    g.write_text(CSV_HEADER + "2024-03-01T00:00:00Z,fr,40\n")
    assert [p.zone for p in parse(g, "csv", zone="FR").points] == ["FR"]


@pytest.mark.parametrize("second", ["fr,50", "fr,51", " Fr ,50"])
def test_same_zone_spelled_two_ways_at_one_time_is_refused(tmp_path: Path, second: str) -> None:
    f = tmp_path / "dup.csv"
    f.write_text(CSV_HEADER + f"2024-03-01T00:00:00Z,FR,50\n2024-03-01T00:00:00Z,{second}\n")
    with pytest.raises(InputError) as e:
        parse(f, "csv")
    msg = e.value.message()
    assert f"{f}:2" in msg and f"{f}:3" in msg and "ambiguous duplicate" in msg and "same zone FR" in msg


def test_ambiguous_duplicate_refused_by_the_cli_and_nothing_stored(tmp_path: Path) -> None:
    dbfile = tmp_path / "w.duckdb"
    db.connect(dbfile).close()
    f = tmp_path / "dup.csv"
    f.write_text(CSV_HEADER + "2024-03-01T00:00:00Z,FR,50\n2024-03-01T01:00:00Z,FR,52\n2024-03-01T00:00:00Z,fr,50\n")
    refused(wattprint("intensity", "import", str(f), "--format", "csv", "--db", str(dbfile)), "intensity import",
            f"{f}:2", f"{f}:4", "ambiguous duplicate")
    con = duckdb.connect(str(dbfile), read_only=True)
    assert con.execute("SELECT count(*) FROM intensity_points").fetchall() == [(0,)]
    assert con.execute("SELECT count(*) FROM intensity_hourly").fetchall() == [(0,)]
    con.close()


def test_check_points_refuses_spellings_of_one_zone_at_one_time() -> None:
    a = IntensityPoint("DE", T0, T0 + 60 * MIN, 300.0, "lifecycle", "csv", origin="a.csv:2")
    b = IntensityPoint("de", T0, T0 + 60 * MIN, 300.0, "lifecycle", "csv", origin="b.csv:5")
    with pytest.raises(InputError, match=r"a\.csv:2.*b\.csv:5"):
        check_points([a, b])
    # the same spelling twice is an identical duplicate (neighbouring API windows return it): dropped
    assert check_points([a, a]) == [a]


# -- 3. sub-hourly rows in the generic CSV ---------------------------------------------------------------

def test_sub_hourly_generic_csv_rows_get_advice_that_works(tmp_path: Path) -> None:
    f = tmp_path / "quarters.csv"
    f.write_text(CSV_HEADER + "2024-03-01T00:00:00Z,FR,50\n2024-03-01T00:15:00Z,FR,51\n")
    with pytest.raises(InputError) as e:
        parse_and_check(f)
    msg = e.value.message()
    assert f"{f}:2" in msg and f"{f}:3" in msg and "overlapping" in msg
    assert "different zones" not in msg                 # that would price the cluster's zone with half the data
    assert "aggregate sub-hourly values" in msg and "electricitymaps-json" in msg


def parse_and_check(path: Path, fmt: str = "csv") -> list[IntensityPoint]:
    return check_points(parse(path, fmt).points)


# -- 2. combining imports by coverage (the store) --------------------------------------------------------

def p(start_min: float, minutes: float, g: float, origin: str, *, zone: str = "FR", basis: str = "lifecycle",
      source: str = "electricitymaps") -> IntensityPoint:
    start = T0 + start_min * MIN
    return IntensityPoint(zone, start, start + minutes * MIN, g, basis, source, origin=origin)


def quarter(i: int, g: float, file: str) -> IntensityPoint:
    """The i-th 15-minute point from T0, as an Electricity Maps 15-minute record of `file`."""
    return p(15 * i, 15, g, f"{file}: history[{i}]")


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    c = db.connect(tmp_path / "w.duckdb")
    yield c
    c.close()


def store(con: duckdb.DuckDBPyConnection, points: Sequence[IntensityPoint]) -> IntensityStoreResult:
    with db.transaction(con):
        return write_intensity(con, check_points(points))


def hours(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, int], tuple[float, int]]:
    """(zone, hour after T0) -> (g_per_kwh, covered_s)."""
    rows = con.execute("SELECT zone, hour_ts, g_per_kwh, covered_s FROM intensity_hourly ORDER BY ALL").fetchall()
    return {(z, int((h - T0).total_seconds() // 3600)): (g, c) for z, h, g, c in rows}


def stored_points(con: duckdb.DuckDBPyConnection) -> list[tuple[float, float, float, str]]:
    """(start, end in minutes after T0, g_per_kwh, origin) of every stored point of FR."""
    rows = con.execute("SELECT start_ts, end_ts, g_per_kwh, origin FROM intensity_points WHERE zone = 'FR'"
                       " ORDER BY start_ts").fetchall()
    return [((s - T0).total_seconds() / 60, (e - T0).total_seconds() / 60, g, o) for s, e, g, o in rows]


def tables(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: con.execute(f"SELECT * EXCLUDE (imported_at) FROM {t} ORDER BY ALL").fetchall()  # noqa: S608
            for t in ("intensity_points", "intensity_hourly")}


Q = [110.0, 130.0, 170.0, 190.0, 90.0, 70.0]    # 15-minute values from 00:00 to 01:30


def test_split_files_combine_by_coverage(con: duckdb.DuckDBPyConnection) -> None:
    a = [quarter(0, Q[0], "a.json"), quarter(1, Q[1], "a.json")]                           # 00:00-00:30
    b = [quarter(2, Q[2], "b.json"), quarter(3, Q[3], "b.json"), quarter(4, Q[4], "b.json")]  # 00:30-01:15
    c = [quarter(5, Q[5], "c.json")]                                                         # 01:15-01:30
    res = store(con, a)
    assert (res.written, res.replaced, res.points_replaced, res.points_trimmed) == (1, 0, 0, 0)
    assert hours(con) == {("FR", 0): (pytest.approx((110 + 130) / 2), 1800)}
    res = store(con, b)
    assert (res.written, res.replaced, res.points_replaced, res.points_trimmed) == (2, 1, 0, 0)
    store(con, c)
    assert hours(con) == {("FR", 0): (pytest.approx((110 + 130 + 170 + 190) / 4), 3600),
                          ("FR", 1): (pytest.approx((90 + 70) / 2), 1800)}
    assert [g for _, _, g, _ in stored_points(con)] == Q


def test_import_order_does_not_matter(tmp_path: Path) -> None:
    files = {"a": [quarter(0, Q[0], "a"), quarter(1, Q[1], "a")], "b": [quarter(2, Q[2], "b"), quarter(3, Q[3], "b")],
             "c": [quarter(4, Q[4], "c"), quarter(5, Q[5], "c")]}
    got = []
    for order in ("abc", "cab", "bca"):
        c = db.connect(tmp_path / f"{order}.duckdb")
        for name in order:
            store(c, files[name])
        got.append(tables(c))
        c.close()
    assert got[0] == got[1] == got[2]


def test_overlapping_import_replaces_only_what_it_covers(con: duckdb.DuckDBPyConnection) -> None:
    store(con, [p(0, 60, 50.0, "h.csv:2", source="csv")])                  # one hourly value for 00:00-01:00
    res = store(con, [p(15, 15, 100.0, "q.json: history[0]")])               # 00:15-00:30 imported again, finer
    assert (res.written, res.replaced, res.points_replaced, res.points_trimmed) == (1, 1, 0, 1)
    assert stored_points(con) == [(0, 15, 50.0, "h.csv:2"), (15, 30, 100.0, "q.json: history[0]"),
                                  (30, 60, 50.0, "h.csv:2")]
    assert hours(con) == {("FR", 0): (pytest.approx((50 * 45 + 100 * 15) / 60), 3600)}
    # 00:10-00:40: trims the first and last hourly pieces, replaces the quarter whole
    res = store(con, [p(10, 30, 20.0, "r.json: history[0]")])
    assert (res.points_replaced, res.points_trimmed) == (1, 2)
    assert stored_points(con) == [(0, 10, 50.0, "h.csv:2"), (10, 40, 20.0, "r.json: history[0]"),
                                  (40, 60, 50.0, "h.csv:2")]
    assert hours(con) == {("FR", 0): (pytest.approx((50 * 10 + 20 * 30 + 50 * 20) / 60), 3600)}
    # the whole hour again: replaces everything in it
    res = store(con, [p(0, 60, 45.0, "h2.csv:2", source="csv")])
    assert (res.points_replaced, res.points_trimmed) == (3, 0)
    assert stored_points(con) == [(0, 60, 45.0, "h2.csv:2")] and hours(con) == {("FR", 0): (45.0, 3600)}


def test_reimporting_the_same_file_leaves_identical_tables(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    f = tmp_path / "em.json"
    f.write_text(json.dumps({"zone": "fr", "history": [
        {"datetime": f"2024-03-01T00:{15 * i:02d}:00Z", "carbonIntensity": g, "temporalGranularity": "15_minutes"}
        for i, g in enumerate(Q[:3])]}))
    other = [quarter(3, 33.0, "other.json"), quarter(4, 44.0, "other.json")]
    store(con, other)
    store(con, parse_and_check(f, "electricitymaps-json"))
    before = tables(con)
    res = store(con, parse_and_check(f, "electricitymaps-json"))
    assert tables(con) == before
    assert (res.written, res.replaced, res.points_replaced, res.points_trimmed) == (1, 1, 3, 0)
    assert hours(con)[("FR", 0)] == (pytest.approx((110 + 130 + 170 + 33) / 4), 3600)


def test_a_daily_value_is_clipped_and_its_other_hours_stay_as_they_were(con: duckdb.DuckDBPyConnection) -> None:
    store(con, [p(0, 24 * 60, 300.0, "d.json: history[0]")])
    before = con.execute("SELECT * FROM intensity_hourly WHERE hour_ts <> ? ORDER BY ALL",
                         [T0 + 5 * 60 * MIN]).fetchall()
    assert len(before) == 23
    res = store(con, [p(5 * 60, 15, 100.0, "q.json: history[0]")])
    assert (res.written, res.replaced, res.points_replaced, res.points_trimmed) == (1, 1, 0, 1)
    assert hours(con)[("FR", 5)] == (pytest.approx((100 * 15 + 300 * 45) / 60), 3600)
    after = con.execute("SELECT * FROM intensity_hourly WHERE hour_ts <> ? ORDER BY ALL",
                        [T0 + 5 * 60 * MIN]).fetchall()
    assert after == before          # untouched hours are not even rewritten
    assert [(s, e, g) for s, e, g, _ in stored_points(con)] == [(0, 300, 300.0), (300, 315, 100.0),
                                                                (315, 1440, 300.0)]


def test_zones_do_not_clip_each_other(con: duckdb.DuckDBPyConnection) -> None:
    store(con, [p(0, 60, 50.0, "a.csv:2"), p(0, 60, 80.0, "a.csv:3", zone="DE")])
    store(con, [p(0, 30, 10.0, "b.json: history[0]", zone="de")])
    assert hours(con) == {("FR", 0): (50.0, 3600), ("DE", 0): (pytest.approx((10 * 30 + 80 * 30) / 60), 3600)}


def test_bases_are_not_averaged_together(con: duckdb.DuckDBPyConnection) -> None:
    store(con, [p(0, 30, 50.0, "life.json: history[0]")])
    before = tables(con)
    with pytest.raises(InputError) as e:
        store(con, [p(30, 30, 40.0, "direct.json: history[0]", basis="direct")])
    msg = e.value.message()
    assert "life.json: history[0]" in msg and "direct.json: history[0]" in msg and "bases do not mix" in msg
    assert e.value.where == "direct.json: history[0]"
    assert tables(con) == before                       # the transaction rolled back
    # in one import
    with pytest.raises(InputError, match="import one basis per zone"):
        store(con, [p(60, 30, 50.0, "m.json: history[0]"), p(90, 30, 40.0, "m.json: history[1]", basis="direct")])
    assert tables(con) == before
    # a direct value for the whole hour replaces the lifecycle half: nothing is averaged
    store(con, [p(0, 60, 40.0, "direct.json: history[1]", basis="direct")])
    assert con.execute("SELECT basis, g_per_kwh, covered_s FROM intensity_hourly").fetchall() == [
        ("direct", 40.0, 3600)]


def test_mixed_bases_refused_by_the_cli_and_nothing_stored(tmp_path: Path) -> None:
    dbfile = tmp_path / "w.duckdb"
    good = tmp_path / "life.csv"
    good.write_text(CSV_HEADER + "2024-03-01T00:00:00Z,FR,50\n")
    assert wattprint("intensity", "import", str(good), "--format", "csv", "--db", str(dbfile)).returncode == 0
    con = duckdb.connect(str(dbfile), read_only=True)
    before = tables(con)
    con.close()
    direct = tmp_path / "direct.json"
    direct.write_text(json.dumps({"zone": "fr", "history": [{"datetime": "2024-03-01T00:15:00Z", "carbonIntensity": 30,
                                                              "temporalGranularity": "15_minutes",
                                                              "emissionFactorType": "direct"}]}))
    refused(wattprint("intensity", "import", str(direct), "--format", "electricitymaps-json", "--db", str(dbfile)),
            "intensity import", f"{direct}: history[0]", f"{good}:2", "bases do not mix", "--basis")
    con = duckdb.connect(str(dbfile), read_only=True)
    assert tables(con) == before
    con.close()


def test_hours_stored_without_points_are_kept(con: duckdb.DuckDBPyConnection) -> None:
    # written by something other than the import path (e.g. a benchmark): one full hour, no point
    con.execute("INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s,"
                " origin) VALUES ('FR', ?, 60, 'lifecycle', 'csv', false, 3600, 'bench')", [T0])
    store(con, [p(45, 15, 20.0, "q.json: history[0]")])
    assert hours(con) == {("FR", 0): (pytest.approx((60 * 45 + 20 * 15) / 60), 3600)}
    assert [(s, e, g) for s, e, g, _ in stored_points(con)] == [(0, 45, 60.0), (45, 60, 20.0)]


# -- 1. migration 0004 on a database written before it --------------------------------------------------

OLD_ROWS = [   # zone as stored before v4, hour, g/kWh, covered_s, origin, imported_at (day of January 2024)
    ("fr", 0, 40.0, 3600, "old-fr.csv:2", 1),
    ("FR", 0, 41.0, 3600, "new-FR.csv:2", 2),            # the same zone and hour, imported later: kept
    ("FR", 1, 42.0, 1800, "uk-like.json: data[0]", 2),   # a partly covered hour
    ("Fr", 2, 43.0, 3600, "mixed.csv:2", 3),
    ("GCP:Europe-West1", 0, 90.0, 3600, "g.csv:2", 1),
    ("aws : us-west-2", 0, 91.0, 3600, "a.csv:2", 1),
    ("uk", 0, 92.0, 3600, "u.csv:2", 1),
    ("us-cal-ciso", 0, 93.0, 3600, "c.csv:2", 1),
    ("US-CAL-CISO", 0, 94.0, 3600, "c2.csv:2", 1),       # same time as the row above; tie on imported_at:
                                                         # the row already spelled canonically is kept
    ("World", 0, 95.0, 3600, "w.csv:2", 1),
    ("caiso_north", 0, 96.0, 3600, "wt.json: data[0]", 1),
]


def old_database(path: Path) -> None:
    """A database at schema v3 (migrations 1-3 only) holding zones as wattprint stored them before v4."""
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
                " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    for version, name, sql in db.migrations():
        if version <= 3:
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    for zone, hour, g, covered, origin, day in OLD_ROWS:
        con.execute("INSERT INTO intensity_hourly VALUES (?, ?, ?, 'lifecycle', 'csv', false, ?, ?, ?)",
                    [zone, T0 + hour * 60 * MIN, g, covered, origin, datetime(2024, 1, day, tzinfo=UTC)])
    con.execute("INSERT INTO clusters VALUES ('jz', 'onprem', NULL, 'fr', 1.0, false),"
                " ('g', 'gcp', NULL, 'GCP:EUROPE-WEST1', 1.0, false), ('n', 'onprem', NULL, NULL, 1.0, false)")
    con.close()


def test_migration_respells_stored_zones_as_the_python_rule_does(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    old_database(path)
    con = db.connect(path)                                            # applies 0004
    assert con.execute("SELECT count(*) FROM schema_migrations WHERE version = 4").fetchall() == [(1,)]
    got = {(z, int((h - T0).total_seconds() // 3600)): (g, c, o) for z, h, g, c, o in con.execute(
        "SELECT zone, hour_ts, g_per_kwh, covered_s, origin FROM intensity_hourly").fetchall()}
    # the truth: each stored zone through the Python rule; of rows meeting on one key the latest import wins
    want: dict[tuple[str, int], tuple[float, int, str]] = {}
    for zone, hour, g, covered, origin, _day in sorted(OLD_ROWS, key=lambda r: (r[5], r[0] == canonical_zone(r[0]))):
        want[(canonical_zone(zone), hour)] = (g, covered, origin)
    assert got == want
    assert got[("FR", 0)] == (41.0, 3600, "new-FR.csv:2") and got[("US-CAL-CISO", 0)][0] == 94.0
    assert {z for z, _ in got} == {"FR", "gcp:europe-west1", "aws:us-west-2", "GB", "US-CAL-CISO", "world",
                                   "CAISO_NORTH"}
    # every hour became one point [hour, hour + covered_s)
    pts = con.execute("SELECT zone, start_ts, end_ts, g_per_kwh, origin FROM intensity_points").fetchall()
    assert sorted((z, int((s - T0).total_seconds()), int((e - T0).total_seconds()), g, o) for z, s, e, g, o in pts) \
        == sorted((z, 3600 * h, 3600 * h + c, g, o) for (z, h), (g, c, o) in want.items())
    assert dict(con.execute("SELECT cluster, zone FROM clusters").fetchall()) == {
        "jz": "FR", "g": "gcp:europe-west1", "n": None}
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall() == [(0,)]
    # an import after the migration combines with the old partly covered hour 01:00-01:30
    store(con, [p(90, 30, 62.0, "rest.json: history[0]", source="csv")])
    assert hours(con)[("FR", 1)] == (pytest.approx((42 * 30 + 62 * 30) / 60), 3600)
    con.close()


def test_migration_knows_every_shipped_zone_not_spelled_in_upper_case() -> None:
    """0004 carries the shipped table's spellings (a migration cannot read the CSV). A zone added to the table
    later, spelled otherwise than in upper case, needs a migration that re-spells zones stored before it."""
    (sql,) = [s for v, _, s in db.migrations() if v == 4]
    listed = set(re.findall(r"\('([^']+)'\)", sql))
    missing = [r.zone for r in embedded.load() if r.zone != r.zone.upper() and r.zone not in listed]
    assert not missing, f"add a migration re-spelling stored zones for {missing}"


# -- end to end: a real Prometheus, the real CLI, results against hand-computed truth ----------------------

POWER_W = 400.0                       # one GPU running one job at a constant 400 W
HOURS = 4
START, END = "2024-03-01T00:00:00Z", "2024-03-01T04:00:00Z"
PUE = 1.5


def history() -> list[tuple[str, dict[str, str], float, float]]:
    """The wattprint exporter's counters for host n1 GPU 0 (cluster c1), scraped every 60 s; the exporter and
    job j1 started 10 minutes before the window, so every hour of the window holds POWER_W x 3600 J."""
    t0 = T0.timestamp()
    began = t0 - 600
    base = {"cluster": "c1", "hostname": "n1", "gpu": "0", "uuid": "GPU-n1-0", "model": "H100",
            "instance": "n1:9835", "job": "wattprint"}
    out = []
    t = began
    while t <= t0 + HOURS * 3600 + 600:
        joules = POWER_W * (t - began)
        out.append(("wattprint_gpu_energy_joules_total", base, t, joules))
        out.append(("wattprint_gpu_idle_energy_joules_total", base, t, 0.0))
        out.append(("wattprint_job_energy_joules_total", {**base, "job_id": "j1"}, t, joules))
        t += 60
    return out


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A database after `wattprint ingest` of the history from a real Prometheus (copied by each test)."""
    tmp = tmp_path_factory.mktemp("identity")
    prom: RunningStore = start_prometheus_with_history(tmp / "prom", history())
    try:
        path = tmp / "ingested.duckdb"
        res = wattprint("ingest", "--prometheus", prom.base_url, "--start", START, "--end", END, "--db", str(path))
        assert res.returncode == 0, res.stderr
    finally:
        prom.stop()
    yield path


def copy_db(ingested: Path, tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    shutil.copy(ingested, path)
    return path


def config(tmp_path: Path, zone: str) -> Path:
    path = tmp_path / "wattprint.yaml"
    path.write_text(f"clusters:\n  c1:\n    zone: {zone}\n    pue: {PUE}\n")
    return path


def gpu_hours(dbfile: Path) -> dict[int, tuple[float, float, str, str, float]]:
    """hour of the window -> (energy J, emissions g, intensity_quality, zone, g/kWh) of fct_job_gpu_hour."""
    con = duckdb.connect(str(dbfile), read_only=True)
    rows = con.execute(
        "SELECT hour_ts, sum(energy_j), sum(emissions_g), string_agg(DISTINCT intensity_quality, ','),"
        " string_agg(DISTINCT zone, ','), max(intensity_g_per_kwh) FROM fct_job_gpu_hour WHERE energy_j > 0"
        " GROUP BY hour_ts ORDER BY hour_ts").fetchall()
    con.close()
    return {int((h - T0).total_seconds() // 3600): (e, g, q, z, i) for h, e, g, q, z, i in rows}


def truth_g(g_per_kwh: float) -> float:
    """Emissions of one hour of the history: POWER_W for 3600 s, in kWh, times PUE and the intensity."""
    return POWER_W * 3600 / 3.6e6 * PUE * g_per_kwh


def report_intensity_quality(dbfile: Path, conf: Path) -> dict[str, float]:
    res = wattprint("report", "--start", START, "--end", END, "--format", "json", "--db", str(dbfile),
                    "--config", str(conf))
    assert res.returncode == 0, res.stderr
    shares: dict[str, float] = json.loads(res.stdout)["data_quality"]["intensity"]
    return {k: v for k, v in shares.items() if v}


@pytest.mark.parametrize(("config_zone", "file_zone"), [("fr", "FR"), ("FR", "fr"), ("gcp:Europe-West1",
                                                                                     "GCP:europe-west1")])
def test_config_zone_prices_with_imported_hours_spelled_otherwise(ingested: Path, tmp_path: Path, config_zone: str,
                                                                    file_zone: str) -> None:
    dbfile, conf = copy_db(ingested, tmp_path), config(tmp_path, config_zone)
    values = [40.0, 55.0, 70.0, 25.0]
    f = tmp_path / "intensity.csv"
    f.write_text(CSV_HEADER + "".join(f"2024-03-01T{h:02d}:00:00Z,{file_zone},{v}\n" for h, v in enumerate(values)))
    res = wattprint("intensity", "import", str(f), "--format", "csv", "--db", str(dbfile), "--config", str(conf))
    assert res.returncode == 0, res.stderr
    assert "intensity_quality: hourly 100.0 %" in res.stdout
    assert "annual" not in res.stdout and "world average" not in res.stderr and "import" not in res.stderr
    zone = canonical_zone(config_zone)
    got = gpu_hours(dbfile)
    assert sorted(got) == list(range(HOURS))
    for h, v in enumerate(values):
        energy_j, emissions_g, quality, fct_zone, g_per_kwh = got[h]
        assert energy_j == pytest.approx(POWER_W * 3600)
        assert (quality, fct_zone, g_per_kwh) == ("hourly", zone, v)
        assert emissions_g == pytest.approx(truth_g(v))
    assert report_intensity_quality(dbfile, conf) == {"hourly": pytest.approx(1.0)}


def em_quarters(path: Path, first: int, values: Sequence[float], zone: str = "FR") -> Path:
    """An Electricity Maps API response of 15-minute records from quarter `first` after T0."""
    path.write_text(json.dumps({"zone": zone, "history": [
        {"zone": zone, "datetime": (T0 + 15 * (first + i) * MIN).isoformat().replace("+00:00", "Z"),
         "carbonIntensity": v, "temporalGranularity": "15_minutes", "emissionFactorType": "lifecycle"}
        for i, v in enumerate(values)]}))
    return path


def test_sub_hourly_imports_split_mid_hour_combine_by_coverage(ingested: Path, tmp_path: Path) -> None:
    dbfile, conf = copy_db(ingested, tmp_path), config(tmp_path, "FR")
    q = [100.0 + 37.0 * (i % 5) - 11.0 * (i // 4) for i in range(4 * HOURS)]      # 16 distinct-ish quarters
    a = em_quarters(tmp_path / "a.json", 0, q[:10])          # 00:00 - 02:30
    b = em_quarters(tmp_path / "b.json", 10, q[10:])         # 02:30 - 04:00

    def imp(path: Path) -> subprocess.CompletedProcess[str]:
        res = wattprint("intensity", "import", str(path), "--format", "electricitymaps-json", "--db", str(dbfile),
                        "--config", str(conf))
        assert res.returncode == 0, res.stderr
        return res

    def mean(xs: Sequence[float]) -> float:
        return sum(xs) / len(xs)

    imp(a)
    got = gpu_hours(dbfile)
    for h in (0, 1):
        assert got[h][2:] == ("hourly", "FR", pytest.approx(mean(q[4 * h:4 * h + 4])))
    # hour 2 holds only 02:00-02:30: its own mean, but not labelled as a full hour; hour 3 has no data and takes
    # the nearest hour's value (hour 2, within the 3-hour bound)
    assert got[2][2:] == ("nearest_hour", "FR", pytest.approx(mean(q[8:10])))
    assert got[3][2:] == ("nearest_hour", "FR", pytest.approx(mean(q[8:10])))
    assert got[2][1] == pytest.approx(truth_g(mean(q[8:10])))
    assert report_intensity_quality(dbfile, conf) == {"hourly": pytest.approx(0.5), "nearest_hour": pytest.approx(0.5)}

    res = imp(b)
    assert "as 2 zone-hours (1 replaced)" in res.stdout and "intensity_quality: hourly 100.0 %" in res.stdout
    got = gpu_hours(dbfile)
    for h in range(HOURS):
        assert got[h][2:] == ("hourly", "FR", pytest.approx(mean(q[4 * h:4 * h + 4])))
        assert got[h][1] == pytest.approx(truth_g(mean(q[4 * h:4 * h + 4])))
    assert report_intensity_quality(dbfile, conf) == {"hourly": pytest.approx(1.0)}

    # re-importing 02:15-02:45 with new values replaces just those two quarters of hour 2
    c = em_quarters(tmp_path / "c.json", 9, [12.0, 345.0])
    res = imp(c)
    assert "2 replaced, 0 trimmed" in res.stdout
    assert gpu_hours(dbfile)[2][1] == pytest.approx(truth_g(mean([q[8], 12.0, 345.0, q[11]])))
    # and a.json again restores 02:15-02:30 only (02:30-02:45 stays as c.json has it)
    imp(a)
    got = gpu_hours(dbfile)
    assert got[2][1] == pytest.approx(truth_g(mean([q[8], q[9], 345.0, q[11]])))
    assert [got[h][1] for h in (0, 1, 3)] == [pytest.approx(truth_g(mean(q[4 * h:4 * h + 4]))) for h in (0, 1, 3)]
