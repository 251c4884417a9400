"""`wattprint serve-intensity` as a real process against fake upstream APIs on 127.0.0.1 (no mocks of our code).

The fake APIs answer good values, hang past --timeout, return garbage, HTTP 500, drop the connection and
return stale data, switched by the test while the exporter runs; the exporter must keep serving the last good
value, count each failure by reason, show the value's age, fall back to the annual table only after --max-age,
and keep answering /metrics at once whatever upstream does. One golden page (annual source, fixed clocks).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import bcrypt
import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, free_port, loopback_server, require_tool, wait_http
from wattprint.pipeline import db
from wattprint.pipeline.cli import build_parser
from wattprint.pipeline.cli.serve_intensity import request as serve_request
from wattprint.pipeline.errors import DatabaseLocked
from wattprint.pipeline.live import sources
from wattprint.pipeline.live.intensity_server import IntensityCollector, Ledger, Refresher, options
from wattprint.pipeline.records import JobRecord
from wattprint.pipeline.store import write_jobs

GOLDEN = "tests/golden/serve_intensity_metrics.txt"
TOKEN = "em-secret-token-1234"
FR_ANNUAL, WORLD = 57.0, 473.05
HOUR = timedelta(hours=1)


# -- fake upstream ------------------------------------------------------------------------------------------

class Upstream:
    """A fake intensity API. `mode` decides every answer: good, hang, garbage, shape, error500, drop, stale."""

    def __init__(self) -> None:
        self.mode = "good"
        self.value = 100.0
        self.hang_s = 3.0
        self.release = threading.Event()
        self.calls: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        self.route: Callable[[str, dict[str, list[str]], dict[str, str]], tuple[int, Any]] = self.electricitymaps
        up = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                headers = {k.lower(): v for k, v in self.headers.items()}
                up.calls.append((parts.path, query, headers))
                mode = up.mode
                if mode == "hang":
                    up.release.wait(up.hang_s)
                if mode == "drop":
                    self.close_connection = True
                    return
                if mode in ("garbage", "error500"):
                    status, body = (200, b"<html><body>upstream is having a bad day</body></html>") \
                        if mode == "garbage" else (500, {"message": "internal error"})
                elif mode == "shape":
                    status, body = 200, {"unexpected": [1, 2, 3]}
                else:
                    status, body = up.route(parts.path, query, headers)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass   # the exporter gave up on a hanging request: writing the late answer fails, as it should

        self.httpd, self.url = loopback_server(Handler, Server)

    def electricitymaps(self, path: str, q: dict[str, list[str]], h: dict[str, str]) -> tuple[int, Any]:
        if path != "/v3/carbon-intensity/latest" or h.get("auth-token") != TOKEN:
            return 401, {"message": "bad route or token"}
        zone = q["zone"][0]
        if zone != "FR":
            return 404, {"error": f"zone {zone} is not supported"}
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        if self.mode == "stale":
            hour -= 10 * HOUR
        return 200, {"zone": zone, "carbonIntensity": self.value, "datetime": hour.isoformat().replace("+00:00", "Z"),
                     "updatedAt": datetime.now(UTC).isoformat(), "emissionFactorType": "lifecycle",
                     "isEstimated": True, "estimationMethod": "TIME_SLICER_AVERAGE"}

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


# -- the exporter as a process ------------------------------------------------------------------------------

class Serve:
    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None, scheme: str = "http",
                 **get_kw: Any) -> None:
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.get_kw = get_kw
        self.log = tmp_path / f"serve-{self.port}.log"
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("ELECTRICITYMAPS_", "WATTTIME_", "WATTPRINT_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wattprint.pipeline.cli", "serve-intensity", *args,
             "--web.listen-address", f"127.0.0.1:{self.port}"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.log.open("w"),
            env={**base, "PYTHONPATH": str(REPO), **(env or {})})
        try:
            wait_http(f"{self.url}/-/healthy", timeout=20, **get_kw)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"serve-intensity did not start:\n{self.stderr()}") from None

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        r = requests.get(f"{self.url}/metrics", timeout=5, **self.get_kw)
        r.raise_for_status()
        return {(s.name, frozenset(s.labels.items())): s.value
                for fam in text_string_to_metric_families(r.text) for s in fam.samples}

    def stderr(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("serve-intensity did not stop within 10 s of SIGTERM") from None
        return self.proc.returncode


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def start(*args: str, **kw: Any) -> Serve:
        s = Serve(tmp_path, *args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def get(m: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    want = set(labels.items())
    hits = [v for (n, ls), v in m.items() if n == name and want <= ls]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def intensity(m: dict[tuple[str, frozenset[tuple[str, str]]], float], zone: str) -> tuple[float, str, str]:
    """(value, source, basis) of the zone's one intensity series."""
    rows = [(v, dict(ls)) for (n, ls), v in m.items()
            if n == "wattprint_grid_intensity_grams_per_kwh" and ("zone", zone) in ls]
    assert len(rows) == 1, rows
    return rows[0][0], rows[0][1]["source"], rows[0][1]["basis"]


def wait_for(s: Serve, check: Callable[[dict[tuple[str, frozenset[tuple[str, str]]], float]], bool],
             timeout: float = 10.0, what: str = "") -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    deadline = time.monotonic() + timeout
    while True:
        m = s.metrics()
        if check(m):
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last page: {m}\nstderr:\n{s.stderr()}")
        time.sleep(0.05)


def errors(m: dict[tuple[str, frozenset[tuple[str, str]]], float], zone: str, reason: str) -> float:
    return get(m, "wattprint_grid_intensity_refresh_errors_total", zone=zone, reason=reason)


# -- live API: every kind of failure ------------------------------------------------------------------------

def test_failing_source_keeps_last_value_counts_reasons_then_falls_back(serve, upstream, tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    max_age = 6.0
    s = serve("--source", "electricitymaps", "--zone", "FR", "--zone", "ZZ", "--base-url", upstream.url,
              "--token-file", str(token), "--refresh-interval", "0.2", "--timeout", "0.5", "--max-age", str(max_age))
    m = wait_for(s, lambda m: get(m, "wattprint_grid_intensity_refreshes_total", zone="FR") >= 1, what="a refresh")
    assert intensity(m, "FR") == (100.0, "electricitymaps", "lifecycle")
    assert get(m, "wattprint_grid_intensity_fallback", zone="FR") == 0
    first_success = get(m, "wattprint_grid_intensity_last_success_timestamp_seconds", zone="FR")
    assert abs(first_success - time.time()) < 30
    # ZZ: the API does not know it (404) and the table has no row: the world value, fallback from the start
    assert intensity(m, "ZZ") == (WORLD, "annual_table", "lifecycle")
    assert get(m, "wattprint_grid_intensity_fallback", zone="ZZ") == 1
    assert get(m, "wattprint_grid_intensity_last_success_timestamp_seconds", zone="ZZ") == 0
    assert errors(m, "ZZ", "http") >= 1

    def invariant(m: dict) -> None:
        """Whatever upstream does: FR is served, the last good value until --max-age, then the annual one."""
        age = get(m, "wattprint_grid_intensity_age_seconds", zone="FR")
        fb = get(m, "wattprint_grid_intensity_fallback", zone="FR")
        assert fb == (1.0 if age > max_age else 0.0), (age, fb)
        assert intensity(m, "FR") == ((FR_ANNUAL, "annual_table", "lifecycle") if fb else
                                      (upstream.value, "electricitymaps", "lifecycle"))

    ages = []
    for mode, reason in (("hang", "timeout"), ("garbage", "parse"), ("shape", "parse"), ("error500", "http"),
                         ("drop", "connection"), ("stale", "no_data")):
        before = errors(s.metrics(), "FR", reason)
        upstream.mode = mode
        deadline = time.monotonic() + 8
        while True:
            t0 = time.monotonic()
            m = s.metrics()
            took = time.monotonic() - t0
            assert took < 0.5, f"/metrics took {took:.2f}s while upstream is in mode {mode}"
            invariant(m)
            if errors(m, "FR", reason) > before:
                break
            assert time.monotonic() < deadline, f"no {reason} error counted in mode {mode}: {m}\n{s.stderr()}"
            time.sleep(0.05)
        assert get(m, "wattprint_grid_intensity_last_success_timestamp_seconds", zone="FR") == first_success
        ages.append(get(m, "wattprint_grid_intensity_age_seconds", zone="FR"))
    assert ages == sorted(ages) and ages[-1] > ages[0], ages
    assert get(m, "wattprint_grid_intensity_fallback", zone="FR") == 0, "fell back before --max-age"
    assert get(m, "wattprint_grid_intensity_refreshes_total", zone="FR") >= 7

    # good again: the new value, age back near zero
    upstream.value, upstream.mode = 120.0, "good"
    m = wait_for(s, lambda m: intensity(m, "FR")[0] == 120.0, what="the new good value")
    assert get(m, "wattprint_grid_intensity_age_seconds", zone="FR") < 1.0
    assert get(m, "wattprint_grid_intensity_last_success_timestamp_seconds", zone="FR") > first_success

    # failing for longer than --max-age: the annual value, fallback 1; the age keeps counting
    upstream.mode = "error500"
    m = wait_for(s, lambda m: (invariant(m), get(m, "wattprint_grid_intensity_fallback", zone="FR") == 1)[1],
                 timeout=max_age + 5, what="the fallback after --max-age")
    assert intensity(m, "FR") == (FR_ANNUAL, "annual_table", "lifecycle")
    assert get(m, "wattprint_grid_intensity_age_seconds", zone="FR") > max_age
    upstream.value, upstream.mode = 130.0, "good"
    m = wait_for(s, lambda m: intensity(m, "FR") == (130.0, "electricitymaps", "lifecycle"), what="recovery")
    assert get(m, "wattprint_grid_intensity_fallback", zone="FR") == 0

    assert all(h.get("auth-token") == TOKEN for p, _, h in upstream.calls if p.startswith("/v3/"))
    assert s.stop() == 0
    log = s.stderr()
    assert "Traceback" not in log and TOKEN not in log
    # one line per change of failure kind: timeout, parse (garbage then shape), http, connection, no_data, http
    fr = [line for line in log.splitlines() if 'msg="refresh failed" zone=FR ' in line]
    assert [line.split("reason=")[1].split()[0] for line in fr] == [
        "timeout", "parse", "http", "connection", "no_data", "http"], fr
    zz = [line.split("reason=")[1].split()[0] for line in log.splitlines() if 'msg="refresh failed" zone=ZZ ' in line]
    assert zz[0] == "http" and all(a != b for a, b in zip(zz, zz[1:], strict=False)), zz   # 404, then as FR
    assert any("has no row in the shipped annual table" in line and " zone=ZZ " in line for line in log.splitlines())
    assert "msg=stale zone=FR " in log and 'msg="refresh ok again" zone=FR ' in log


def test_metrics_answer_at_once_while_a_refresh_hangs(serve, upstream, tmp_path):
    """A request stuck upstream (long --timeout) blocks neither scrapes nor the staleness fallback, nor shutdown."""
    token = tmp_path / "token"
    token.write_text(TOKEN)
    s = serve("--source", "electricitymaps", "--zone", "FR", "--base-url", upstream.url, "--token-file", str(token),
              "--refresh-interval", "0.2", "--timeout", "60", "--max-age", "1.5")
    wait_for(s, lambda m: intensity(m, "FR")[0] == 100.0, what="the first value")
    upstream.hang_s, upstream.mode = 60.0, "hang"
    time.sleep(0.3)
    stuck = get(s.metrics(), "wattprint_grid_intensity_refreshes_total", zone="FR")
    slowest, deadline = 0.0, time.monotonic() + 8
    while True:
        t0 = time.monotonic()
        m = s.metrics()
        slowest = max(slowest, time.monotonic() - t0)
        if get(m, "wattprint_grid_intensity_fallback", zone="FR") == 1:
            break
        assert time.monotonic() < deadline, m
        time.sleep(0.05)
    assert slowest < 0.5, slowest
    assert intensity(m, "FR") == (FR_ANNUAL, "annual_table", "lifecycle")
    assert get(m, "wattprint_grid_intensity_refreshes_total", zone="FR") == stuck     # still hanging
    assert sum(errors(m, "FR", r) for r in sources.REASONS) == 0
    t0 = time.monotonic()
    assert s.stop() == 0 and time.monotonic() - t0 < 5


# -- other sources ------------------------------------------------------------------------------------------

def _half_hour_value(start: datetime) -> float:
    return 100.0 + start.hour * 2 + start.minute // 30


def uk_route(path: str, q: dict[str, list[str]], h: dict[str, str]) -> tuple[int, Any]:
    assert path.startswith("/intensity/"), path
    frm, to = (datetime.strptime(x, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC) for x in path.split("/")[2:4])
    now, rows, t = datetime.now(UTC), [], frm
    while t < to:
        end = t + timedelta(minutes=30)
        v = _half_hour_value(t)
        rows.append({"from": t.strftime("%Y-%m-%dT%H:%MZ"), "to": end.strftime("%Y-%m-%dT%H:%MZ"),
                     "intensity": {"forecast": v, "actual": v if end <= now else None, "index": "low"}})
        t = end
    return 200, {"data": rows}


def test_uk_source_serves_the_half_hour_in_force(serve, upstream):
    upstream.route = uk_route
    before = datetime.now(UTC)
    s = serve("--source", "uk", "--zone", "GB", "--base-url", upstream.url, "--refresh-interval", "30")
    m = s.metrics()
    after = datetime.now(UTC)
    value, source, basis = intensity(m, "GB")
    expected = {_half_hour_value(t.replace(minute=t.minute // 30 * 30, second=0, microsecond=0))
                for t in (before, after)}
    assert value in expected and (source, basis) == ("uk", "direct")
    assert get(m, "wattprint_grid_intensity_fallback", zone="GB") == 0
    (path, _, _), = upstream.calls
    frm, to = path.split("/")[2:4]
    assert datetime.strptime(to, "%Y-%m-%dT%H:%MZ") - datetime.strptime(frm, "%Y-%m-%dT%H:%MZ") == 4 * HOUR


def test_watttime_source_logs_in_and_converts_to_grams(serve, upstream, tmp_path):
    password = tmp_path / "wt-password"
    password.write_text("wt-pass-5678\n")

    def route(path: str, q: dict[str, list[str]], h: dict[str, str]) -> tuple[int, Any]:
        if path == "/login":
            ok = h.get("authorization") == "Basic " + base64.b64encode(b"wt-user:wt-pass-5678").decode()
            return (200, {"token": "wt-bearer"}) if ok else (403, {"error": "bad credentials"})
        if path != "/v3/historical" or h.get("authorization") != "Bearer wt-bearer":
            return 401, {"error": "no token"}
        start = datetime.fromisoformat(q["start"][0].replace("Z", "+00:00"))
        end = datetime.fromisoformat(q["end"][0].replace("Z", "+00:00"))
        t = start.replace(minute=start.minute // 5 * 5, second=0, microsecond=0)
        data = []
        while t <= end:
            data.append({"point_time": t.isoformat(), "value": 1000.0})
            t += timedelta(minutes=5)
        return 200, {"data": data, "meta": {"region": q["region"][0], "units": "lbs_co2_per_mwh",
                                            "signal_type": "co2_moer", "data_point_period_seconds": 300}}

    upstream.route = route
    s = serve("--source", "watttime", "--zone", "CAISO_NORTH", "--base-url", upstream.url, "--token-file",
              str(password), "--refresh-interval", "30", env={"WATTTIME_USERNAME": "wt-user"})
    value, source, basis = intensity(s.metrics(), "CAISO_NORTH")
    assert abs(value - 453.59237) < 1e-6 and (source, basis) == ("watttime", "marginal")
    assert s.stop() == 0 and "wt-pass-5678" not in s.stderr() and "wt-bearer" not in s.stderr()


CSV_HEADER = "timestamp,zone,intensity_g_per_kwh\n"


def _csv(rows: list[tuple[datetime, str, float]]) -> str:
    return CSV_HEADER + "".join(f"{t.isoformat().replace('+00:00', 'Z')},{z},{v}\n" for t, z, v in rows)


def test_csv_source_serves_the_current_hour_and_rereads_the_file(serve, tmp_path):
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    path = tmp_path / "intensity.csv"
    # DE only has a row from five hours ago: older than --max-age, so no_data and DE's annual value
    path.write_text(_csv([(hour - 2 * HOUR, "FR", 10), (hour - HOUR, "FR", 20), (hour, "FR", 30),
                          (hour + HOUR, "FR", 40), (hour + 2 * HOUR, "FR", 50), (hour - 5 * HOUR, "DE", 300)]))
    s = serve("--source", "csv", "--csv", str(path), "--zone", "FR", "--zone", "DE", "--refresh-interval", "0.2")
    m = s.metrics()
    # the hour may turn while this runs: then the next hour's row (40) is the one in force
    expected = {30.0} if datetime.now(UTC) < hour + HOUR else {30.0, 40.0}
    value, source, basis = intensity(m, "FR")
    assert value in expected and (source, basis) == ("csv", "lifecycle")
    assert get(m, "wattprint_grid_intensity_fallback", zone="FR") == 0
    assert intensity(m, "DE")[1] == "annual_table" and get(m, "wattprint_grid_intensity_fallback", zone="DE") == 1
    assert errors(m, "DE", "no_data") >= 1
    # the file is rewritten (a cron job): the new value is served
    path.write_text(_csv([(hour, "FR", 33.5)]))
    wait_for(s, lambda m: intensity(m, "FR")[0] == 33.5, what="the rewritten CSV")
    # garbage, then no file at all: the last good value stays
    path.write_text("this,is,not\nthe,generic,csv\n")
    m = wait_for(s, lambda m: errors(m, "FR", "parse") >= 1, what="a parse error")
    assert intensity(m, "FR") == (33.5, "csv", "lifecycle")
    path.unlink()
    m = wait_for(s, lambda m: errors(m, "FR", "connection") >= 1, what="the missing file counted")
    assert intensity(m, "FR") == (33.5, "csv", "lifecycle")
    assert s.stop() == 0 and "Traceback" not in s.stderr()


CONFIG = """\
clusters:
  jean-zay: {provider: onprem, region: fr-idf, zone: FR, pue: 1.2}
  oregon: {provider: aws, region: us-west-2, zone: "aws:us-west-2"}
  lab: {provider: onprem}
  mars: {provider: onprem, region: olympus, zone: XX, pue: 1.5}
budgets:
  projects:
    idefics: {monthly_kgco2eq: 2000}
    "vision lab": {monthly_kgco2eq: 12.5}
"""


def test_annual_source_with_the_cluster_config(serve, tmp_path):
    cfg = tmp_path / "wattprint.yaml"
    cfg.write_text(CONFIG)
    s = serve("--source", "annual", "--refresh-interval", "0.5", env={"WATTPRINT_CONFIG": str(cfg)})
    m = s.metrics()
    assert intensity(m, "FR") == (FR_ANNUAL, "annual_table", "lifecycle")
    assert intensity(m, "aws:us-west-2") == (288.0, "annual_table", "direct")
    assert intensity(m, "world") == (WORLD, "annual_table", "lifecycle")          # lab has no zone
    assert intensity(m, "XX") == (WORLD, "annual_table", "lifecycle")
    assert [get(m, "wattprint_grid_intensity_fallback", zone=z) for z in ("FR", "aws:us-west-2", "world", "XX")] \
        == [0, 0, 0, 1]
    assert get(m, "wattprint_cluster_info", cluster="oregon", provider="aws", region="us-west-2",
               zone="aws:us-west-2") == 1
    assert get(m, "wattprint_cluster_info", cluster="lab", provider="onprem", region="", zone="world") == 1
    assert [get(m, "wattprint_cluster_pue_ratio", cluster=c) for c in ("jean-zay", "oregon", "lab", "mars")] == [
        1.2, 1.0, 1.0, 1.5]
    assert get(m, "wattprint_project_carbon_budget_grams", project="idefics") == 2_000_000
    assert get(m, "wattprint_project_carbon_budget_grams", project="vision lab") == 12_500
    assert get(m, "wattprint_intensity_exporter_build_info", version="0.1.0") == 1
    assert not any(n == "wattprint_job_project_info" for n, _ in m)                  # no --db
    assert s.stop() == 0
    assert ('msg="zone not asked from the source: serving the shipped annual value with fallback=1" zone=XX '
            'source=annual reason="no row in the shipped annual table" serving="world average"') in s.stderr()


# -- the job ledger -----------------------------------------------------------------------------------------

def _job(job_id: str, project: str, start: datetime, end: datetime | None, phase: str = "pretraining") -> JobRecord:
    return JobRecord(cluster="jz", job_id=job_id, project=project, phase=phase, start=start, end=end,
                     nodes=("gpu01",), gpus_per_node=4, source="csv", origin=f"test:{job_id}")


def _connect_retrying(path: Path) -> Any:
    """A writer connection; the exporter's read-only reads hold the file for milliseconds, so retry briefly."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return db.connect(path)
        except DatabaseLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_db_running_jobs_survive_a_locked_and_a_missing_ledger(serve, tmp_path):
    path = tmp_path / "ledger.duckdb"
    now = datetime.now(UTC)
    con = db.connect(path)
    write_jobs(con, [_job("42", "idefics", now - HOUR, None),                      # running
                     _job("43", "idefics", now - 3 * HOUR, now - HOUR),            # ended
                     _job("44", "vision", now + HOUR, None),                       # not started
                     _job("46", "vision", now - HOUR, now + HOUR, "evaluation")])  # running, end planned
    con.close()
    s = serve("--source", "annual", "--zone", "FR", "--db", str(path), "--refresh-interval", "0.2")
    m = s.metrics()
    jobs = {dict(ls)["job_id"]: dict(ls) for (n, ls), _ in m.items() if n == "wattprint_job_project_info"}
    assert set(jobs) == {"42", "46"}
    assert jobs["46"] == {"cluster": "jz", "job_id": "46", "project": "vision", "phase": "evaluation"}
    assert get(m, "wattprint_intensity_exporter_ledger_last_success_timestamp_seconds") > 0

    con = _connect_retrying(path)            # a writer holds the file: reads fail, the last list stays
    try:
        m = wait_for(s, lambda m: get(m, "wattprint_intensity_exporter_ledger_read_errors_total", reason="locked") >= 2,
                     what="locked reads counted")
        assert {dict(ls)["job_id"] for (n, ls), _ in m.items() if n == "wattprint_job_project_info"} == {"42", "46"}
        write_jobs(con, [_job("45", "vision", now - HOUR, None)])
    finally:
        con.close()
    wait_for(s, lambda m: any(n == "wattprint_job_project_info" and ("job_id", "45") in ls for n, ls in m),
             what="job 45 after the writer closed")
    path.unlink()
    m = wait_for(s, lambda m: get(m, "wattprint_intensity_exporter_ledger_read_errors_total", reason="missing") >= 1,
                 what="the missing ledger counted")
    assert {dict(ls)["job_id"] for (n, ls), _ in m.items() if n == "wattprint_job_project_info"} == {"42", "45", "46"}
    assert s.stop() == 0
    log = s.stderr()
    assert "Traceback" not in log
    assert sum("ledger read failed" in line and "reason=locked" in line for line in log.splitlines()) == 1


# -- web config ---------------------------------------------------------------------------------------------

def test_tls_and_basic_auth_from_the_web_config(serve, tmp_path, cert):
    crt, key = cert
    hashed = bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {crt}\n  key_file: {key}\n"
                   f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    s = serve("--source", "annual", "--zone", "FR", "--web.config.file", str(web), scheme="https", verify=str(crt))
    assert requests.get(f"{s.url}/metrics", verify=str(crt), timeout=5).status_code == 401
    assert requests.get(f"{s.url}/metrics", verify=str(crt), auth=("prometheus", "wrong"), timeout=5).status_code == 401
    r = requests.get(f"{s.url}/metrics", verify=str(crt), auth=("prometheus", "scrape-pass"), timeout=5)
    assert r.status_code == 200 and 'wattprint_grid_intensity_grams_per_kwh{basis="lifecycle"' in r.text
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{s.port}/metrics", timeout=5)
    assert s.stop() == 0 and "scrape-pass" not in s.stderr()


# -- bad flags ----------------------------------------------------------------------------------------------

BAD = [
    ([], "--source: required"),
    (["--source", "gridstatus", "--zone", "FR"], "--source: unknown source 'gridstatus'"),
    (["--source", "csv", "--zone", "FR"], "--csv: --source csv needs --csv FILE"),
    (["--source", "annual", "--zone", "FR", "--csv", "x.csv"], "--csv: only used with --source csv"),
    (["--source", "csv", "--zone", "FR", "--csv", "{tmp}/missing.csv"], "missing.csv: cannot read the file"),
    (["--source", "csv", "--zone", "FR", "--csv", "{tmp}/bad.csv"], "bad.csv:1: unknown column 'when'"),
    (["--source", "annual", "--zone", "FR", "--refresh-interval", "0"], "--refresh-interval: expected a number"),
    (["--source", "annual", "--zone", "FR", "--refresh-interval", "soon"], "--refresh-interval: 'soon' is not"),
    (["--source", "annual", "--zone", "FR", "--timeout", "nan"], "--timeout: expected a number of seconds > 0"),
    (["--source", "annual", "--zone", "FR", "--max-age", "60", "--refresh-interval", "300"],
     "--max-age: 60s is not longer than --refresh-interval 300s"),
    (["--source", "annual"], "--zone: no zone to serve"),
    (["--source", "uk", "--zone", "GB", "--base-url", "https://bob:s3cret@api.example.com"],
     "--base-url: the URL contains credentials"),
    (["--source", "annual", "--zone", " "], "--zone: empty zone"),
    (["--source", "uk", "--zone", "FR"], "--zone: FR: not a UK Carbon Intensity zone"),
    (["--source", "electricitymaps", "--zone", "FR"], "ELECTRICITYMAPS_TOKEN: credential not set"),
    (["--source", "electricitymaps", "--zone", "FR", "--token-file", "{tmp}/nope"], "cannot read the"),
    (["--source", "annual", "--zone", "FR", "--token-file", "{tmp}/t"], "--token-file: annual takes no credential"),
    (["--source", "uk", "--zone", "GB", "--base-url", "ftp://x"], "--base-url: 'ftp://x' is not an http(s) URL"),
    (["--source", "annual", "--zone", "FR", "--web.listen-address", "nowhere"], "--web.listen-address: listen addr"),
    (["--source", "annual", "--zone", "FR", "--web.config.file", "{tmp}/web.yml"], "--web.config.file: web config"),
    (["--source", "annual", "--zone", "FR", "--log.level", "loud"], "--log.level: unknown level 'loud'"),
    (["--source", "annual", "--config", "{tmp}/bad.yaml"], "bad.yaml:3: budgets.projects.p.monthly_kgco2eq"),
    (["--source", "annual", "--zone", "FR", "--web.listen-address", "127.0.0.1:{busy}"], "cannot listen"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD, ids=[f[1].split(":")[0] + str(i) for i, f in enumerate(BAD)])
def test_bad_flags_exit_2_with_one_line(tmp_path, args, fragment):
    (tmp_path / "bad.csv").write_text("when,zone,intensity_g_per_kwh\n")
    (tmp_path / "bad.yaml").write_text("budgets:\n  projects:\n    p: {monthly_kgco2eq: -3}\n")
    (tmp_path / "web.yml").write_text("basic_auth_users:\n  u: plaintext\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = [a.format(tmp=tmp_path, busy=port) for a in args]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ELECTRICITYMAPS_", "WATTTIME_", "WATTPRINT_"))}
        res = subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", "serve-intensity", *argv,
                              *([] if "--web.listen-address" in args else ["--web.listen-address", "127.0.0.1:0"])],
                             cwd=REPO, capture_output=True, text=True, timeout=20, env={**env, "PYTHONPATH": str(REPO)})
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wattprint serve-intensity: error: "), res.stderr
    assert fragment in lines[0], lines[0]
    assert "s3cret" not in res.stderr


# -- golden page --------------------------------------------------------------------------------------------

EPOCH = 1_795_000_000.0


def render_page(tmp_path: Path) -> str:
    """The full page of an annual-source exporter on fixed clocks, with a config and a ledger."""
    cfg = tmp_path / "wattprint.yaml"
    cfg.write_text(CONFIG)
    args = build_parser().parse_args(["serve-intensity", "--config", str(cfg), "--source", "annual"])
    opts = options(serve_request(args), environ={})
    mono = [5000.0]
    refresher = Refresher(sources.AnnualSource(), opts.zones, opts.refresh_s, opts.max_age_s,
                          clock=lambda: mono[0], wallclock=lambda: EPOCH)
    for zone, st in refresher.states.items():
        if st.unserved is None:
            refresher.refresh(zone)
    mono[0] += 42.0
    now = datetime.fromtimestamp(EPOCH, UTC)
    path = tmp_path / "ledger.duckdb"
    con = db.connect(path)
    write_jobs(con, [_job("1001", "idefics", now - HOUR, None), _job("1002", "vision lab", now - HOUR, now + HOUR,
                                                                     "finetuning"),
                     _job("1000", "idefics", now - 5 * HOUR, now - HOUR)])
    con.close()
    ledger = Ledger(str(path), 300.0, wallclock=lambda: EPOCH)
    ledger.refresh()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IntensityCollector(refresher, opts.clusters, opts.budgets_g, ledger))
    return generate_latest(registry).decode()


def test_metrics_page_matches_golden(tmp_path, request):
    page = render_page(tmp_path)
    golden = request.config.rootpath / GOLDEN
    if request.config.getoption("--update-golden"):
        golden.write_text(page)
    assert page == golden.read_text(), "metrics page changed: run pytest --update-golden and review the diff"


def test_promtool_check_metrics_reports_no_problem(tmp_path):
    promtool = require_tool("promtool")
    res = subprocess.run([promtool, "check", "metrics"], input=render_page(tmp_path), capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "" and res.stderr.strip() == "", res.stdout + res.stderr
