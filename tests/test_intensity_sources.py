"""Grid carbon intensity sources: file parsers, set checks, API clients (against a local server), annual table."""

from __future__ import annotations

import base64
import csv
import json
import logging
import math
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from wattprint.pipeline.errors import InputError, UpstreamError
from wattprint.pipeline.records import IntensityPoint
from wattprint.pipeline.sources.intensity import MOER_WARNING, check_points, embedded, fetch, parse, parse_file

FIX = Path(__file__).resolve().parent / "fixtures" / "intensity"
EM_HISTORY = FIX / "aioelectricitymaps_carbon_intensity_history.json"
EM_LATEST = FIX / "aioelectricitymaps_latest_carbon_intensity.json"
UK_NATIONAL = FIX / "nmpowell_national_pt24h_2023-03-14T1201Z.json"
UK_REGIONAL = FIX / "uk_regional_regionid13_constructed.json"
WATTTIME = FIX / "aiowatttime_historical_emissions_response.json"
EM_CSV_NEW = FIX / "electricitymaps_hourly_DE_2023-01-01_constructed.csv"
EM_CSV_OLD = FIX / "electricitymaps_hourly_FR_2021-06-01_older_header_constructed.csv"
GCP_2024 = FIX / "region-carbon-info_yearly_2024.csv"

CRED_VARS = ("ELECTRICITYMAPS_TOKEN", "ELECTRICITYMAPS_TOKEN_FILE", "WATTTIME_USERNAME", "WATTTIME_USERNAME_FILE",
             "WATTTIME_PASSWORD", "WATTTIME_PASSWORD_FILE")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches the internet: only loopback connections are allowed; no real credentials leak in."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"test tried to reach {host}")
        return real_connect(self, address)

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kw: Any) -> Any:
        if host not in ("127.0.0.1", "::1", "localhost", None):
            raise OSError(f"test tried to resolve {host}")
        return real_getaddrinfo(host, *args, **kw)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for var in CRED_VARS:
        monkeypatch.delenv(var, raising=False)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def raises_at(fn: Callable[[], object], *parts: str) -> InputError:
    with pytest.raises(InputError) as ei:
        fn()
    msg = str(ei.value)
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"
    return ei.value


# --- Electricity Maps JSON ---------------------------------------------------------------------------


def test_em_history_fixture() -> None:
    pts = parse_file(EM_HISTORY, "electricitymaps-json")
    raw = json.loads(EM_HISTORY.read_text())["history"]
    assert len(pts) == len(raw) == 24
    first = pts[0]
    assert (first.zone, first.g_per_kwh, first.basis, first.source) == ("DE", 599.0, "lifecycle", "electricitymaps")
    assert first.start == utc(2024, 3, 5, 20) and first.end == utc(2024, 3, 5, 21)   # datetime, not updatedAt
    assert not first.is_estimated and first.origin.endswith("history[0]")
    last = pts[-1]
    assert (last.start, last.g_per_kwh, last.is_estimated) == (utc(2024, 3, 6, 19), 689.0, True)
    assert last.notes == ("estimated: TIME_SLICER_AVERAGE",)
    assert sum(p.is_estimated for p in pts) == sum(bool(r["isEstimated"]) for r in raw)
    assert all(b.start - a.start == timedelta(hours=1) for a, b in zip(pts, pts[1:], strict=False))


def test_em_latest_single_record_and_zone_override() -> None:
    [p] = parse_file(EM_LATEST, "electricitymaps-json")
    assert (p.zone, p.g_per_kwh, p.is_estimated, p.start) == ("US-CAR-DUK", 216.0, True, utc(2024, 3, 6, 19))
    [q] = parse_file(EM_LATEST, "electricitymaps-json", zone="my-zone")
    # the canonical spelling (wattprint/pipeline/zones.py): upper case for a zone not shipped
    assert q.zone == "MY-ZONE"


def test_em_json_past_range_shape_and_basis(tmp_path: Path) -> None:
    body = json.loads(EM_HISTORY.read_text())
    body["data"] = body.pop("history")
    for rec in body["data"]:
        rec["emissionFactorType"] = "direct"
    f = write(tmp_path, "past_range.json", json.dumps(body))
    pts = parse_file(f, "electricitymaps-json")
    assert len(pts) == 24 and {p.basis for p in pts} == {"direct"}
    raises_at(lambda: parse_file(f, "electricitymaps-json", basis="lifecycle"), "past_range.json: data[0]", "direct")


def test_em_json_bad_values(tmp_path: Path) -> None:
    body = json.loads(EM_HISTORY.read_text())
    body["history"][3]["carbonIntensity"] = -5
    f = write(tmp_path, "neg.json", json.dumps(body))
    raises_at(lambda: parse_file(f, "electricitymaps-json"), "neg.json: history[3].carbonIntensity", "negative")
    body["history"][3]["carbonIntensity"] = 600
    body["history"][5]["datetime"] = "2024-03-06T01:00:00"
    f = write(tmp_path, "naive.json", json.dumps(body))
    raises_at(lambda: parse_file(f, "electricitymaps-json"), "naive.json: history[5].datetime", "no timezone")


# --- UK Carbon Intensity ----------------------------------------------------------------------------


def test_uk_national_fixture() -> None:
    pts = parse_file(UK_NATIONAL, "uk-json")
    assert len(pts) == 48
    first = pts[0]
    assert (first.zone, first.start, first.end) == ("GB", utc(2023, 3, 13, 12), utc(2023, 3, 13, 12, 30))
    assert (first.g_per_kwh, first.basis, first.is_estimated) == (54.0, "direct", False)   # actual, not forecast 47
    assert pts[-1].g_per_kwh == 97.0 and pts[-1].end == utc(2023, 3, 14, 12)
    assert sum(p.is_estimated for p in pts) == 0          # every half-hour in this capture has an actual
    assert all(p.end - p.start == timedelta(minutes=30) for p in pts)


def test_uk_actual_falls_back_to_forecast(tmp_path: Path) -> None:
    body = json.loads(UK_NATIONAL.read_text())
    for i in (10, 20, 47):
        body["data"][i]["intensity"]["actual"] = None
    f = write(tmp_path, "uk.json", json.dumps(body))
    pts = parse_file(f, "uk-json")
    est = [p for p in pts if p.is_estimated]
    assert len(est) == 3
    assert [p.g_per_kwh for p in est] == [float(body["data"][i]["intensity"]["forecast"]) for i in (10, 20, 47)]
    assert est[0].notes == ("forecast (no actual)",)


def test_uk_regional_constructed() -> None:
    pts = parse_file(UK_REGIONAL, "uk-json")
    assert [p.g_per_kwh for p in pts] == [121.0, 118.0, 115.0]
    assert {p.zone for p in pts} == {"GB-13"} and all(p.is_estimated for p in pts)
    assert pts[0].origin.endswith("data.data[0]")
    assert {p.zone for p in parse_file(UK_REGIONAL, "uk-json", zone="london")} == {"LONDON"}


def test_uk_bad_values_name_json_path(tmp_path: Path) -> None:
    body = json.loads(UK_NATIONAL.read_text())
    body["data"][3]["intensity"]["actual"] = 9999
    f = write(tmp_path, "uk_big.json", json.dumps(body))
    raises_at(lambda: parse_file(f, "uk-json"), "uk_big.json: data[3].intensity.actual", "implausible")
    body["data"][3]["intensity"] = {"forecast": None, "actual": None}
    f = write(tmp_path, "uk_none.json", json.dumps(body))
    raises_at(lambda: parse_file(f, "uk-json"), "uk_none.json: data[3].intensity.forecast", "missing")
    raises_at(lambda: parse_file(UK_NATIONAL, "uk-json", basis="lifecycle"), "--basis")


# --- WattTime ---------------------------------------------------------------------------------------


def test_watttime_fixture_converts_lbs_per_mwh() -> None:
    result = parse(WATTTIME, "watttime-json")
    assert result.warnings == [MOER_WARNING]
    a, b = result.points
    assert a.g_per_kwh == pytest.approx(870 * 453.59237 / 1000) == pytest.approx(394.6253619)
    assert b.g_per_kwh == pytest.approx(860 * 0.45359237)
    assert (a.zone, a.basis, a.source, a.is_estimated) == ("CAISO_NORTH", "marginal", "watttime", True)
    assert (a.start, a.end) == (utc(2022, 7, 15), utc(2022, 7, 15, 0, 5))
    assert "marginal" in a.notes[0] and "not" in a.notes[0]


def test_watttime_period_default_and_units(tmp_path: Path) -> None:
    body = json.loads(WATTTIME.read_text())
    del body["meta"]["data_point_period_seconds"]
    f = write(tmp_path, "wt.json", json.dumps(body))
    assert parse_file(f, "watttime-json")[0].end == utc(2022, 7, 15, 0, 5)
    body["meta"]["data_point_period_seconds"] = 900
    f = write(tmp_path, "wt.json", json.dumps(body))
    assert parse_file(f, "watttime-json")[0].end == utc(2022, 7, 15, 0, 15)
    body["meta"]["units"] = "kg_co2_per_mwh"
    f = write(tmp_path, "wt_units.json", json.dumps(body))
    raises_at(lambda: parse_file(f, "watttime-json"), "wt_units.json: meta.units", "kg_co2_per_mwh")
    body["meta"]["units"] = "lbs_co2_per_mwh"
    del body["meta"]["region"]
    f = write(tmp_path, "wt_noregion.json", json.dumps(body))
    raises_at(lambda: parse_file(f, "watttime-json"), "wt_noregion.json", "--zone")
    assert parse_file(f, "watttime-json", zone="CAISO_NORTH")[0].zone == "CAISO_NORTH"


# --- Electricity Maps CSV ---------------------------------------------------------------------------


def test_em_csv_current_header_lifecycle_and_direct() -> None:
    life = parse_file(EM_CSV_NEW, "electricitymaps-csv")
    assert [p.g_per_kwh for p in life] == [380.2, 372.9, 366.4]
    assert {p.basis for p in life} == {"lifecycle"} and {p.zone for p in life} == {"DE"}
    assert (life[0].start, life[0].end) == (utc(2023, 1, 1, 0), utc(2023, 1, 1, 1))  # naive, UTC per header
    assert [p.is_estimated for p in life] == [False, False, True]
    assert life[0].origin == f"{EM_CSV_NEW}:2"
    direct = parse_file(EM_CSV_NEW, "electricitymaps-csv", basis="direct")
    assert [p.g_per_kwh for p in direct] == [312.5, 305.0, 298.75] and {p.basis for p in direct} == {"direct"}


def test_em_csv_older_header_and_ascii_co2(tmp_path: Path) -> None:
    life = parse_file(EM_CSV_OLD, "electricitymaps-csv")
    assert [p.g_per_kwh for p in life] == [54.3, 53.1] and life[1].start == utc(2021, 6, 1, 1)
    assert [p.g_per_kwh for p in parse_file(EM_CSV_OLD, "electricitymaps-csv", basis="direct")] == [18.4, 17.9]
    text = EM_CSV_OLD.read_text(encoding="utf-8")
    ascii_text = text.replace("CO\u2082", "CO2").replace("Datetime (UTC)", "DATETIME (utc)")
    f = write(tmp_path, "ascii.csv", ascii_text)
    assert [p.g_per_kwh for p in parse_file(f, "electricitymaps-csv", basis="direct")] == [18.4, 17.9]
    assert [p.zone for p in parse_file(f, "electricitymaps-csv", zone="FR-x")] == ["FR-X", "FR-X"]


def test_em_csv_errors(tmp_path: Path) -> None:
    text = EM_CSV_NEW.read_text(encoding="utf-8")
    header, *rows = text.splitlines()
    no_life = header.replace(",Carbon intensity gCO\u2082eq/kWh (Life cycle)", "")
    f = write(tmp_path, "nolife.csv", no_life + "\n")
    raises_at(lambda: parse_file(f, "electricitymaps-csv"), "nolife.csv:1", "missing column", "Life", "--basis")
    f = write(tmp_path, "bad.csv", "\n".join([header, rows[0], rows[1].replace("372.9", "n/a"), ""]))
    raises_at(lambda: parse_file(f, "electricitymaps-csv"), "bad.csv:3", "'n/a' is not a number")
    f = write(tmp_path, "short.csv", "\n".join([header, rows[0], "2023-01-01 01:00:00,Germany,DE", ""]))
    raises_at(lambda: parse_file(f, "electricitymaps-csv"), "short.csv:3", "expected 11 fields, got 3")
    f = write(tmp_path, "badtime.csv", "\n".join([header, rows[0].replace("2023-01-01 00:00:00", "01/01/2023"), ""]))
    raises_at(lambda: parse_file(f, "electricitymaps-csv"), "badtime.csv:2", "ISO 8601")
    raises_at(lambda: parse_file(EM_CSV_NEW, "electricitymaps-csv", basis="marginal"), "--basis", "marginal")
    no_zone = header.replace(",Zone id", "")
    f = write(tmp_path, "nozone.csv", no_zone + "\n" + rows[0].replace(",DE,", ",") + "\n")
    raises_at(lambda: parse_file(f, "electricitymaps-csv"), "nozone.csv:1", "--zone")
    assert parse_file(f, "electricitymaps-csv", zone="DE")[0].zone == "DE"


# --- Generic CSV ------------------------------------------------------------------------------------


def test_generic_csv(tmp_path: Path) -> None:
    f = write(tmp_path, "g.csv", "Timestamp,ZONE,intensity_g_per_kwh\n2024-03-01T00:00:00Z,SE,35.5\n"
                                 "2024-03-01T01:00:00+01:00,SE,36\n\n")
    a, b = parse_file(f, "csv")
    assert (a.zone, a.start, a.end, a.g_per_kwh, a.basis, a.source) == (
        "SE", utc(2024, 3, 1), utc(2024, 3, 1, 1), 35.5, "lifecycle", "csv")
    assert b.start == utc(2024, 3, 1) and b.origin == f"{f}:3"   # +01:00 converted to UTC
    f2 = write(tmp_path, "nozone.csv", "timestamp,intensity_g_per_kwh\n2024-03-01T00:00:00Z,35.5\n")
    raises_at(lambda: parse_file(f2, "csv"), "nozone.csv:1", "pass --zone")
    assert parse_file(f2, "csv", zone="SE", basis="direct")[0].basis == "direct"
    raises_at(lambda: parse_file(f, "csv", zone="NO"), "g.csv:2", "differs from --zone")


HEADER = "timestamp,zone,intensity_g_per_kwh\n"
BAD_GENERIC = [
    ("cols.csv", HEADER + "2024-03-01T00:00:00Z,SE,1\n2024-03-01T01:00:00Z,SE\n", ":3", "expected 3 fields, got 2"),
    ("nonnum.csv", HEADER + "2024-03-01T00:00:00Z,SE,abc\n", ":2", "'abc' is not a number"),
    ("unknown.csv", "timestamp,zone,intensity_g_per_kwh,note\n", ":1", "unknown column 'note'"),
    ("missing.csv", "timestamp,zone\n2024-03-01T00:00:00Z,SE\n", ":1", "missing column(s) intensity_g_per_kwh"),
    ("naive.csv", HEADER + "2024-03-01 00:00:00,SE,1\n", ":2", "has no timezone"),
    ("neg.csv", HEADER + "2024-03-01T00:00:00Z,SE,1\n2024-03-01T01:00:00Z,SE,-3\n", ":3", "negative"),
    ("nan.csv", HEADER + "2024-03-01T00:00:00Z,SE,NaN\n", ":2", "not a finite number"),
    ("inf.csv", HEADER + "2024-03-01T00:00:00Z,SE,inf\n", ":2", "not a finite number"),
    ("absurd.csv", HEADER + "2024-03-01T00:00:00Z,SE,5001\n", ":2", "implausible"),
    ("empty.csv", "", "", "file is empty"),
    ("blank.csv", "\n  \n", "", "file is empty"),
    ("headeronly.csv", HEADER, "", "no data rows"),
    ("dup.csv", "timestamp,zone,Zone,intensity_g_per_kwh\n", ":1", "appears twice"),
    ("quote.csv", HEADER + '2024-03-01T00:00:00Z,"SE,1\n', ":", "malformed CSV"),
]


@pytest.mark.parametrize(("name", "text", "line", "problem"), BAD_GENERIC, ids=[b[0] for b in BAD_GENERIC])
def test_generic_csv_bad_input(tmp_path: Path, name: str, text: str, line: str, problem: str) -> None:
    f = write(tmp_path, name, text)
    err = raises_at(lambda: parse_file(f, "csv"), f"{name}{line}", problem)
    assert err.hint, "every error says what to do"


def test_invalid_json_gives_line_and_column(tmp_path: Path) -> None:
    f = write(tmp_path, "broken.json", '{\n  "data": [\n    {"from": }\n  ]\n}\n')
    for fmt in ("uk-json", "electricitymaps-json", "watttime-json"):
        raises_at(partial(parse_file, f, fmt), "broken.json:3", "line 3 column 14")
    f = write(tmp_path, "empty.json", "")
    raises_at(lambda: parse_file(f, "uk-json"), "empty.json", "file is empty")
    f = write(tmp_path, "wrong.json", '{"foo": []}')
    raises_at(lambda: parse_file(f, "electricitymaps-json"), "wrong.json", "no 'history' or 'data'")
    raises_at(lambda: parse_file(f, "uk-json"), "wrong.json: data", "missing field")


def test_unknown_format_and_missing_file(tmp_path: Path) -> None:
    raises_at(lambda: parse_file(EM_HISTORY, "xml"), "--format", "electricitymaps-json")
    raises_at(lambda: parse_file(tmp_path / "nope.csv", "csv"), "nope.csv", "file not found")


# --- check_points -----------------------------------------------------------------------------------


def pt(zone: str, start: datetime, minutes: int, value: float, origin: str, basis: str = "lifecycle") -> IntensityPoint:
    return IntensityPoint(zone, start, start + timedelta(minutes=minutes), value, basis, "csv", origin=origin)


def test_check_points_drops_identical_duplicates_and_sorts() -> None:
    a = pt("DE", utc(2024, 1, 1, 1), 60, 300, "a.csv:2")
    b = pt("DE", utc(2024, 1, 1, 0), 60, 310, "a.csv:3")
    dup = pt("DE", utc(2024, 1, 1, 1), 60, 300, "b.csv:7")
    other_zone = pt("FR", utc(2024, 1, 1, 1), 60, 50, "b.csv:8")
    assert check_points([a, b, dup, other_zone]) == [b, a, other_zone]


def test_check_points_conflict_names_both_origins() -> None:
    a = pt("DE", utc(2024, 1, 1), 60, 300, "a.csv:2")
    b = pt("DE", utc(2024, 1, 1), 60, 301, "b.csv:9")
    raises_at(lambda: check_points([a, b]), "a.csv:2", "b.csv:9", "conflicting values", "keep one source")
    c = pt("DE", utc(2024, 1, 1), 60, 300, "c.csv:4", basis="direct")
    raises_at(lambda: check_points([a, c]), "a.csv:2", "c.csv:4", "conflicting")


def test_check_points_overlap_names_both_origins() -> None:
    hour = pt("GB", utc(2024, 1, 1, 12), 60, 200, "em.csv:5")
    half = pt("GB", utc(2024, 1, 1, 12, 30), 30, 180, "uk.json: data[1]")
    raises_at(lambda: check_points([half, hour]), "em.csv:5", "uk.json: data[1]", "overlapping")
    touching = pt("GB", utc(2024, 1, 1, 13), 30, 180, "uk.json: data[2]")
    assert check_points([touching, hour]) == [hour, touching]


def test_parsed_files_checked_together(tmp_path: Path) -> None:
    f1 = write(tmp_path, "one.csv", HEADER + "2024-03-01T00:00:00Z,SE,35\n2024-03-01T01:00:00Z,SE,36\n")
    f2 = write(tmp_path, "two.csv", HEADER + "2024-03-01T01:00:00Z,SE,36\n2024-03-01T02:00:00Z,SE,37\n")
    assert len(check_points(parse_file(f1, "csv") + parse_file(f2, "csv"))) == 3
    f3 = write(tmp_path, "three.csv", HEADER + "2024-03-01T01:00:00Z,SE,40\n")
    raises_at(lambda: check_points(parse_file(f1, "csv") + parse_file(f3, "csv")), "one.csv:3", "three.csv:2")


# --- fetch against a local HTTP server --------------------------------------------------------------


Responder = Callable[[str, dict[str, list[str]], dict[str, str]], tuple[int, Any]]


class FakeApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.respond: Responder = lambda path, q, h: (404, {"message": "no route"})
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                headers = {k.lower(): v for k, v in self.headers.items()}
                api.calls.append((parts.path, query, headers))
                status, body = api.respond(parts.path, query, headers)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi()
    yield server
    server.close()


def uk_windows(calls: list[tuple[str, Any, Any]], prefix: str) -> list[tuple[str, str]]:
    out = []
    for path, _, _ in calls:
        assert path.startswith(prefix), path
        frm, to = path[len(prefix):].split("/")[:2]
        out.append((frm, to))
    return out


def test_fetch_uk_30_days_in_three_contiguous_requests(api: FakeApi) -> None:
    body = json.loads(UK_NATIONAL.read_text())
    api.respond = lambda path, q, h: (200, body)
    pts = fetch("uk", "GB", utc(2023, 3, 1), utc(2023, 3, 31), base_url=api.url, backoff_s=0)
    assert uk_windows(api.calls, "/intensity/") == [
        ("2023-03-01T00:00Z", "2023-03-15T00:00Z"),
        ("2023-03-15T00:00Z", "2023-03-29T00:00Z"),
        ("2023-03-29T00:00Z", "2023-03-31T00:00Z"),
    ]
    assert len(pts) == 48 and pts[0].g_per_kwh == 54.0   # the three identical answers collapse to one series
    assert pts[0].origin.startswith(api.url + "/intensity/2023-03-01T00:00Z/")


def test_fetch_uk_filters_to_range_and_regional(api: FakeApi) -> None:
    api.respond = lambda path, q, h: (200, json.loads(UK_NATIONAL.read_text()))
    pts = fetch("uk", "GB", utc(2023, 3, 13, 13), utc(2023, 3, 13, 14), base_url=api.url)
    assert [p.start for p in pts] == [utc(2023, 3, 13, 13), utc(2023, 3, 13, 13, 30)]
    api.calls.clear()
    api.respond = lambda path, q, h: (200, json.loads(UK_REGIONAL.read_text()))
    pts = fetch("uk", "gb-13", utc(2023, 3, 14, 12), utc(2023, 3, 14, 14), base_url=api.url)
    assert [c[0] for c in api.calls] == ["/regional/intensity/2023-03-14T12:00Z/2023-03-14T14:00Z/regionid/13"]
    assert {p.zone for p in pts} == {"GB-13"} and len(pts) == 3
    raises_at(lambda: fetch("uk", "FR", utc(2023, 3, 1), utc(2023, 3, 2), base_url=api.url), "--zone", "GB-<regionid>")


def test_fetch_electricitymaps_chunks_and_auth_header(api: FakeApi, monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    token = "em-test-token-5f2a"
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", token)
    body = json.loads(EM_HISTORY.read_text())
    api.respond = lambda path, q, h: (200, body) if h.get("auth-token") == token else (401, {"message": "bad"})
    caplog.set_level(logging.DEBUG)
    pts = fetch("electricitymaps", "DE", utc(2024, 2, 15), utc(2024, 3, 11), base_url=api.url, backoff_s=0)
    assert [c[0] for c in api.calls] == ["/v3/carbon-intensity/past-range"] * 3
    assert [(c[1]["start"][0], c[1]["end"][0]) for c in api.calls] == [
        ("2024-02-15T00:00:00Z", "2024-02-25T00:00:00Z"),
        ("2024-02-25T00:00:00Z", "2024-03-06T00:00:00Z"),
        ("2024-03-06T00:00:00Z", "2024-03-11T00:00:00Z"),
    ]
    assert all(c[1]["zone"] == ["DE"] and c[2]["auth-token"] == token for c in api.calls)
    assert "emissionFactorType" not in api.calls[0][1]
    assert len(pts) == 24 and pts[0].g_per_kwh == 599.0 and token not in pts[0].origin
    assert token not in caplog.text


def test_fetch_electricitymaps_token_file_and_basis(api: FakeApi, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    tok = write(tmp_path, "em.token", "file-token-77\n")
    body = json.loads(EM_HISTORY.read_text())
    for rec in body["history"]:
        rec["emissionFactorType"] = "direct"
    api.respond = lambda path, q, h: (200, body)
    pts = fetch("electricitymaps", "DE", utc(2024, 3, 5), utc(2024, 3, 7), base_url=api.url, token_file=tok,
                basis="direct")
    assert api.calls[0][2]["auth-token"] == "file-token-77"
    assert api.calls[0][1]["emissionFactorType"] == ["direct"] and {p.basis for p in pts} == {"direct"}
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN_FILE", str(tok))
    fetch("electricitymaps", "DE", utc(2024, 3, 5), utc(2024, 3, 7), base_url=api.url, basis="direct")
    assert api.calls[-1][2]["auth-token"] == "file-token-77"


def test_fetch_4xx_message_without_secret(api: FakeApi, monkeypatch: pytest.MonkeyPatch,
                                          caplog: pytest.LogCaptureFixture) -> None:
    token = "very-secret-token-123"
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", token)
    api.respond = lambda path, q, h: (403, {"message": f"Access denied for token {h.get('auth-token')}"})
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UpstreamError) as ei:
        fetch("electricitymaps", "DE", utc(2024, 3, 5), utc(2024, 3, 6), base_url=api.url, backoff_s=0)
    msg = str(ei.value)
    assert "HTTP 403" in msg and "Access denied" in msg and "***" in msg
    assert token not in msg and token not in caplog.text
    assert len(api.calls) == 1                      # 4xx is not retried


def test_fetch_retries_503_then_succeeds(api: FakeApi, caplog: pytest.LogCaptureFixture) -> None:
    body = json.loads(UK_NATIONAL.read_text())
    answers = iter([(503, {"message": "busy"}), (200, body)])
    api.respond = lambda path, q, h: next(answers)
    caplog.set_level(logging.WARNING)
    pts = fetch("uk", "GB", utc(2023, 3, 13), utc(2023, 3, 15), base_url=api.url, backoff_s=0)
    assert len(api.calls) == 2 and len(pts) == 48
    assert "HTTP 503" in caplog.text and "retry 1/2" in caplog.text


def test_fetch_gives_up_after_retries(api: FakeApi) -> None:
    api.respond = lambda path, q, h: (503, b"<html>down</html>")
    with pytest.raises(UpstreamError) as ei:
        fetch("uk", "GB", utc(2023, 3, 13), utc(2023, 3, 15), base_url=api.url, retries=2, backoff_s=0)
    assert len(api.calls) == 3 and "after 3 attempt(s)" in str(ei.value) and "HTTP 503" in str(ei.value)


def test_fetch_connection_error_is_upstream_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]      # closed again before use: nothing listens there
    with pytest.raises(UpstreamError) as ei:
        fetch("uk", "GB", utc(2023, 3, 13), utc(2023, 3, 14), base_url=f"http://127.0.0.1:{port}", retries=1,
              backoff_s=0, timeout_s=2)
    assert "connection failed" in str(ei.value) and "2 attempt(s)" in str(ei.value)


def test_fetch_empty_windows_are_not_errors(api: FakeApi) -> None:
    api.respond = lambda path, q, h: (200, {"data": []})
    assert fetch("uk", "GB", utc(2023, 3, 13), utc(2023, 3, 14), base_url=api.url) == []


def test_fetch_upstream_garbage_is_upstream_error(api: FakeApi) -> None:
    api.respond = lambda path, q, h: (200, {"data": [{"from": "2023-03-13T12:00Z", "to": "2023-03-13T12:30Z",
                                                      "intensity": {"forecast": -1, "actual": None}}]})
    with pytest.raises(UpstreamError) as ei:
        fetch("uk", "GB", utc(2023, 3, 13), utc(2023, 3, 14), base_url=api.url)
    assert "data[0].intensity.forecast" in str(ei.value) and "negative" in str(ei.value)


def test_fetch_watttime_login_bearer_and_chunks(api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    password = "wt-pass-9x"
    monkeypatch.setenv("WATTTIME_USERNAME", "alice")
    monkeypatch.setenv("WATTTIME_PASSWORD_FILE", str(write(tmp_path, "wt.pw", password + "\n")))
    basic = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    body = json.loads(WATTTIME.read_text())

    def respond(path: str, q: dict[str, list[str]], h: dict[str, str]) -> tuple[int, Any]:
        if path == "/login":
            return (200, {"token": "bearer-tok-1"}) if h.get("authorization") == basic else (401, {"error": "no"})
        if path == "/v3/historical" and h.get("authorization") == "Bearer bearer-tok-1":
            return 200, body
        return 403, {"error": "forbidden"}

    api.respond = respond
    caplog.set_level(logging.DEBUG)
    pts = fetch("watttime", "CAISO_NORTH", utc(2022, 7, 1), utc(2022, 8, 10), base_url=api.url, backoff_s=0)
    assert [c[0] for c in api.calls] == ["/login", "/v3/historical", "/v3/historical"]
    hist = [c[1] for c in api.calls[1:]]
    assert [(q["start"][0], q["end"][0]) for q in hist] == [
        ("2022-07-01T00:00:00Z", "2022-08-02T00:00:00Z"), ("2022-08-02T00:00:00Z", "2022-08-10T00:00:00Z")]
    assert all(q["region"] == ["CAISO_NORTH"] and q["signal_type"] == ["co2_moer"] for q in hist)
    assert len(pts) == 2 and pts[0].g_per_kwh == pytest.approx(394.6253619) and pts[0].basis == "marginal"
    assert MOER_WARNING in pts[0].notes
    assert password not in caplog.text and "bearer-tok-1" not in caplog.text


def test_fetch_watttime_bad_login_hides_password(api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTTIME_USERNAME", "alice")
    monkeypatch.setenv("WATTTIME_PASSWORD", "pw-should-not-leak")
    api.respond = lambda path, q, h: (401, {"error": "invalid credentials pw-should-not-leak"})
    with pytest.raises(UpstreamError) as ei:
        fetch("watttime", "CAISO_NORTH", utc(2022, 7, 1), utc(2022, 7, 2), base_url=api.url)
    assert "HTTP 401" in str(ei.value) and "pw-should-not-leak" not in str(ei.value)


def test_fetch_default_base_url_is_blocked_in_tests() -> None:
    with pytest.raises(UpstreamError) as ei:
        fetch("uk", "GB", utc(2023, 3, 13), utc(2023, 3, 14), retries=0, timeout_s=1)
    assert "api.carbonintensity.org.uk" in str(ei.value) and "connection failed" in str(ei.value)


def test_fetch_missing_credentials_and_bad_arguments(api: FakeApi) -> None:
    t0, t1 = utc(2024, 3, 1), utc(2024, 3, 2)
    raises_at(lambda: fetch("electricitymaps", "DE", t0, t1, base_url=api.url), "ELECTRICITYMAPS_TOKEN")
    raises_at(lambda: fetch("watttime", "CAISO_NORTH", t0, t1, base_url=api.url), "WATTTIME_USERNAME")
    raises_at(lambda: fetch("nope", "DE", t0, t1), "--source", "electricitymaps, uk, watttime")
    raises_at(lambda: fetch("uk", "GB", datetime(2024, 3, 1), t1), "--start", "no timezone")
    raises_at(lambda: fetch("uk", "GB", t1, t0), "--end", "not after")
    raises_at(lambda: fetch("uk", "GB", t0, t1, basis="lifecycle"), "--basis")
    assert api.calls == []


# --- Embedded annual table --------------------------------------------------------------------------


def test_embedded_table_is_valid_and_attributed() -> None:
    rows = embedded.load()
    zones = [r.zone.lower() for r in rows]
    assert len(zones) == len(set(zones)), "no duplicate zones"
    for r in rows:
        assert r.source and r.licence and 1990 <= r.year <= 2030, r
        assert 0 <= r.g_per_kwh <= 1500 and math.isfinite(r.g_per_kwh), r
        assert r.kind in embedded.KINDS and r.basis in ("lifecycle", "direct", "marginal"), r
        if r.kind == "country":
            assert len(r.zone) == 2 and r.zone.isupper(), r
        elif r.kind != "world":
            assert r.zone.startswith(f"{r.kind}:"), r
    assert sum(r.kind == "country" for r in rows) >= 40
    sources_md = (Path(embedded.__file__).resolve().parents[2] / "data" / "INTENSITY_SOURCES.md").read_text()
    for needle in ("Ember", "CC BY 4.0", "region-carbon-info", "Apache-2.0", "arXiv:2211.02001", "mlco2/impact"):
        assert needle in sources_md


def test_embedded_gcp_rows_match_google_2024_file() -> None:
    with GCP_2024.open(newline="", encoding="utf-8") as f:
        google = {r["Google Cloud Region"]: float(r["Grid carbon intensity (gCO2eq / kWh)"]) for r in csv.DictReader(f)}
    gcp = {r.zone.removeprefix("gcp:"): r for r in embedded.load() if r.kind == "gcp"}
    assert {k: v.g_per_kwh for k, v in gcp.items()} == google and len(google) == 44
    assert all(r.year == 2024 and r.licence == "Apache-2.0" for r in gcp.values())


def test_embedded_lookup() -> None:
    assert embedded.lookup("AWS:US-WEST-2").g_per_kwh == 288     # type: ignore[union-attr]
    assert embedded.lookup("aws:us-east-1").g_per_kwh == 378     # type: ignore[union-attr]
    assert embedded.lookup("fr").g_per_kwh == 57                 # type: ignore[union-attr]
    assert embedded.lookup("gcp:europe-west1").g_per_kwh == 103.37  # type: ignore[union-attr]
    az = embedded.lookup(" Azure:WestEurope ")
    assert az is not None and az.g_per_kwh == embedded.lookup("NL").g_per_kwh  # type: ignore[union-attr]
    assert "mapped to NL" in az.source
    assert embedded.lookup("uk") == embedded.lookup("GB")
    assert embedded.lookup("xx") is None and embedded.lookup("aws:mars-1") is None
    w = embedded.world()
    assert w.zone == "world" and w.kind == "world" and 400 <= w.g_per_kwh <= 520 and "Ember" in w.source


def test_embedded_parse_rejects_bad_tables() -> None:
    head = ",".join(embedded.COLUMNS) + "\n"
    good = "FR,country,France,57,2022,lifecycle,src,lic\n"
    assert len(embedded.parse(head + good)) == 1
    raises_at(lambda: embedded.parse(head + good + good.replace("FR", "fr")), "appears twice")
    raises_at(lambda: embedded.parse(head + good.replace("lic", "")), "intensity_annual.csv:2", "invalid row")
    raises_at(lambda: embedded.parse(head + good.replace("57", "x")), "intensity_annual.csv:2", "not a number")
    raises_at(lambda: embedded.parse("zone,value\n"), "intensity_annual.csv:1", "expected zone,kind")
