"""`wattprint ingest` against a real Prometheus and a real VictoriaMetrics loaded with a known history."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
import requests

from tests.conftest import REPO, free_port
from tests.ingest_history import (
    CPU_TRUTH_J,
    CPU_TRUTH_S,
    CPU_W,
    DCGM_TOTAL_J,
    GAP,
    TRUTH_J,
    WEIRD_JOB,
    cpu_samples,
    samples,
)
from tests.promstack import start_prometheus_with_history, start_victoriametrics_with_history
from wattprint.pipeline import db
from wattprint.pipeline.ingest import ingest
from wattprint.pipeline.model import build
from wattprint.pipeline.promapi import PromClient, PromConfig
from wattprint.pipeline.settings import load_settings
from wattprint.pipeline.timeutil import parse_instant

START, END = "2024-03-01T00:00:00Z", "2024-03-01T04:00:00Z"


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    history = samples() + cpu_samples()
    prom = start_prometheus_with_history(tmp_path_factory.mktemp("prom"), history)
    try:
        vm = start_victoriametrics_with_history(tmp_path_factory.mktemp("vm"), history)
    except BaseException:
        prom.stop()
        raise
    yield {"prometheus": prom.base_url, "victoriametrics": vm.base_url}
    prom.stop()
    vm.stop()


def wattprint(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def run_ingest(url: str, dbfile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return wattprint("ingest", "--prometheus", url, "--start", START, "--end", END, "--db", str(dbfile), *extra)


def per_owner(con: duckdb.DuckDBPyConnection) -> dict[tuple, float]:
    rows = con.execute("SELECT hostname, gpu, job_id, sum(energy_j) FROM fct_job_gpu_hour GROUP BY ALL").fetchall()
    return {(h, g, j): e for h, g, j, e in rows}


def dump(dbfile: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(dbfile), read_only=True)
    try:
        return {t: con.execute(f"SELECT * EXCLUDE ({x}) FROM {t} ORDER BY ALL").fetchall() for t, x in (
            ("series", "labels"), ("samples", "series_id"), ("fct_job_gpu_hour", "user_name"),
            ("energy_intervals", "label_job"), ("ingest_coverage", "loaded_at"))}
    finally:
        con.close()


@pytest.mark.parametrize("store", ["prometheus", "victoriametrics"])
def test_ingest_counts_every_joule_of_the_known_history(stores, store, tmp_path):
    dbfile = tmp_path / "w.duckdb"
    res = run_ingest(stores[store], dbfile)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    # no config: nothing says where these clusters are, so the output says how they were priced
    assert "intensity_quality: world_default 100.0 %" in res.stdout
    assert "cluster c1 (zone (none))" in res.stderr and "priced at the world average" in res.stderr
    con = duckdb.connect(str(dbfile), read_only=True)
    got = per_owner(con)
    for key, joules in TRUTH_J.items():
        # VictoriaMetrics keeps ~12 significant digits
        assert got.get(key) == pytest.approx(joules, rel=1e-9, abs=1e-3), key
    # dcgm: the GPU counter is exact; the job label applies at the step it is seen
    assert got[("n2", "0", "77")] + got[("n2", "0", "78")] == pytest.approx(DCGM_TOTAL_J["0"], rel=1e-9)
    assert got[("n2", "0", "77")] == pytest.approx(DCGM_TOTAL_J["0"] / 2, abs=250.0 * 60)
    assert got[("n2", "1", None)] == pytest.approx(DCGM_TOTAL_J["1"], rel=1e-9)
    # jobs + idle == the GPU's own counter (wattprint conserves energy per interval)
    totals = dict(con.execute(
        "SELECT st.gpu, sum(i.energy_j) FROM energy_intervals i JOIN streams st USING (stream_id)"
        " WHERE st.source = 'wattprint' AND st.kind = 'gpu' GROUP BY ALL").fetchall())
    for gpu in ("0", "1"):
        attributed = sum(e for (h, g, _), e in got.items() if h == "n1" and g == gpu)
        assert attributed == pytest.approx(totals[gpu], rel=1e-9)
    qualities = {q for (q,) in con.execute("SELECT DISTINCT energy_quality FROM fct_job_gpu_hour").fetchall()}
    assert {"counter", "counter_reset", "gap", "first_sample"} <= qualities
    assert con.execute("SELECT count(*) FROM fct_job_gpu_hour WHERE job_id = ?", [WEIRD_JOB]).fetchall()[0][0] > 0
    # host (RAPL) energy: each job's share and the host idle per domain, and jobs + idle == the socket's counter
    cpu = {(j, d): e for j, d, e in con.execute(
        "SELECT job_id, domain, sum(energy_j) FROM fct_job_cpu_hour GROUP BY ALL").fetchall()}
    assert cpu.keys() == CPU_TRUTH_J.keys()
    for key, joules in CPU_TRUTH_J.items():
        assert cpu[key] == pytest.approx(joules, rel=1e-9, abs=1e-3), key
    for domain, watts in CPU_W.items():
        (socket_j,) = con.execute("SELECT sum(i.energy_j) FROM energy_intervals i JOIN streams st USING (stream_id)"
                                  " WHERE st.kind = 'cpu' AND st.domain = ?", [domain]).fetchall()[0]
        assert sum(e for (_, d), e in cpu.items() if d == domain) == pytest.approx(socket_j, rel=1e-9)
        assert socket_j == pytest.approx(watts * 4 * 3600, rel=1e-9)
    secs = dict(con.execute("SELECT job_id, sum(cpu_seconds) FROM fct_job_cpu_time_hour GROUP BY 1").fetchall())
    assert secs == {job: pytest.approx(s, rel=1e-9) for job, s in CPU_TRUTH_S.items()}
    assert {m for (m,) in con.execute("SELECT DISTINCT cpu_model FROM fct_job_cpu_hour").fetchall()} == {
        "Intel(R) Xeon(R) Platinum 8480+"}
    # cpu_rapl_up at every 60 s step the store answers (Prometheus' 5-minute lookback bridges part of the gap)
    rapl = con.execute("SELECT sum(samples), sum(readable_samples), count(*) FROM node_rapl_hour").fetchall()[0]
    assert rapl[0] == rapl[1] and 4 * 60 - (GAP[1] - GAP[0]) / 60 <= rapl[0] <= 4 * 60 + 1 and rapl[2] == 5
    con.close()


def test_reingesting_a_window_leaves_identical_tables(stores, tmp_path):
    dbfile = tmp_path / "w.duckdb"
    assert run_ingest(stores["prometheus"], dbfile).returncode == 0
    first = dump(dbfile)
    assert run_ingest(stores["prometheus"], dbfile).returncode == 0
    assert dump(dbfile) == first


def test_chunked_queries_give_the_same_result_as_one_request(stores, tmp_path):
    settings = load_settings(None)
    start, end = parse_instant(START, "start"), parse_instant(END, "end")
    results = []
    for max_points in (11000, 37):
        con = db.connect(tmp_path / f"c{max_points}.duckdb")
        with PromClient(PromConfig(stores["prometheus"], max_points=max_points)) as client:
            stats = ingest(con, client, settings.queries(), start, end, 60)
        build(con, settings.build_settings())
        results.append((stats.samples, con.execute("SELECT * FROM fct_job_gpu_hour ORDER BY ALL").fetchall()))
        assert stats.chunks == len(settings.queries()) * (1 if max_points == 11000 else 7)
        con.close()
    assert results[0] == results[1]


class _StallingProxy(http.server.ThreadingHTTPServer):
    """Forwards to the store, but never answers request number `stall_at` (the client is killed meanwhile)."""

    daemon_threads = True

    def __init__(self, upstream: str, stall_at: int) -> None:
        self.upstream, self.stall_at, self.count = upstream, stall_at, 0
        self.stalled = threading.Event()
        self.release = threading.Event()
        super().__init__(("127.0.0.1", free_port()), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _StallingProxy

    def do_POST(self) -> None:  # noqa: N802
        self.server.count += self.path.endswith("/query_range")     # the n-th query_range (series lookups pass)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.count == self.server.stall_at:
            self.server.stalled.set()
            self.server.release.wait(60)
            return
        r = requests.post(self.server.upstream + self.path, data=body,
                          headers={"Content-Type": self.headers["Content-Type"]}, timeout=30)
        self.send_response(r.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(r.content)))
        self.end_headers()
        self.wfile.write(r.content)

    def log_message(self, *args: object) -> None:
        pass


def test_killed_mid_run_leaves_whole_chunks_and_a_rerun_completes(stores, tmp_path):
    clean = tmp_path / "clean.duckdb"
    assert run_ingest(stores["prometheus"], clean).returncode == 0
    proxy = _StallingProxy(stores["prometheus"], stall_at=3)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    dbfile = tmp_path / "killed.duckdb"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wattprint.pipeline.cli", "ingest", "--prometheus", f"http://127.0.0.1:{proxy.server_port}",
             "--start", START, "--end", END, "--db", str(dbfile)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert proxy.stalled.wait(60), "ingest never reached the third query"
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proxy.release.set()
        proxy.shutdown()
    con = duckdb.connect(str(dbfile))
    cov = con.execute("SELECT kind FROM ingest_coverage ORDER BY loaded_at").fetchall()
    assert [k for (k,) in cov] == ["job_energy", "gpu_energy"]   # two whole chunks, nothing half-written
    per_series = con.execute("SELECT count(DISTINCT series_id), count(*) FROM samples").fetchall()[0]
    assert per_series == (4, 352 + 454)
    con.close()
    res = run_ingest(stores["prometheus"], dbfile)
    assert res.returncode == 0, res.stderr
    assert dump(dbfile)["fct_job_gpu_hour"] == dump(clean)["fct_job_gpu_hour"]


def test_a_second_writer_is_told_which_pid_holds_the_database(stores, tmp_path):
    dbfile = tmp_path / "w.duckdb"
    db.connect(dbfile).close()
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]);"
                               " print('held', flush=True); time.sleep(60)", str(dbfile)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        res = run_ingest(stores["prometheus"], dbfile)
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 1
    assert f"database is locked by PID {holder.pid}" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(("args", "needle"), [
    (["--start", "2024-03-01T00:00:00"], "--start: timestamp '2024-03-01T00:00:00' has no timezone"),
    (["--end", "2024-02-01T00:00:00Z"], "--end: 2024-02-01T00:00:00Z is not after --start"),
    (["--match", "cluster"], "--match: 'cluster' is not LABEL=VALUE"),
    (["--match", "bad-label=x"], "bad-label"),
    (["--step", "0"], "--step"),
    (["--prometheus-token-file", "/nonexistent/token"], "--prometheus-token-file"),
])
def test_bad_flags_are_named_and_nothing_is_written(stores, tmp_path, args, needle):
    dbfile = tmp_path / "w.duckdb"
    flags = {"--start": START, "--end": END}
    flags.update(zip(args[::2], args[1::2], strict=True))
    extra = [x for flag, value in flags.items() for x in (flag, value)]
    res = wattprint("ingest", "--prometheus", stores["prometheus"], "--db", str(dbfile), *extra)
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr
    assert "Traceback" not in res.stderr
    if dbfile.exists():
        assert dump(dbfile)["samples"] == []
    if "--match" not in args:
        assert not dbfile.exists()


def test_unreachable_server_fails_after_retries_and_keeps_stored_data(stores, tmp_path):
    dbfile = tmp_path / "w.duckdb"
    assert run_ingest(stores["prometheus"], dbfile).returncode == 0
    before = dump(dbfile)
    res = run_ingest(f"http://127.0.0.1:{free_port()}", dbfile, "--retries", "1")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr and "attempt" in res.stderr
    assert dump(dbfile) == before


def test_negative_counter_is_refused_naming_the_series(stores, tmp_path):
    dbfile = tmp_path / "w.duckdb"
    assert run_ingest(stores["prometheus"], dbfile).returncode == 0
    before = dump(dbfile)
    bad = [("wattprint_gpu_idle_energy_joules_total", {"hostname": "bad", "gpu": "0", "uuid": "U"},
            parse_instant(START, "t").timestamp() + 60 * i, -5.0 + i) for i in range(3)]
    store = start_prometheus_with_history(tmp_path / "bad", bad)
    try:
        res = run_ingest(store.base_url, dbfile)
    finally:
        store.stop()
    assert res.returncode == 2
    assert 'wattprint_gpu_idle_energy_joules_total{gpu="0",hostname="bad",uuid="U"}' in res.stderr
    assert "negative energy counter" in res.stderr and "Traceback" not in res.stderr
    after = dump(dbfile)
    for table in ("series", "samples", "energy_intervals", "fct_job_gpu_hour"):
        assert after[table] == before[table], table


def test_bulk_conversion_matches_the_point_by_point_reference():
    import random

    from wattprint.pipeline.ingest import IngestStats, SeriesQuery, _convert, _convert_points, _SeriesIds

    class _NoIds(_SeriesIds):
        def __init__(self) -> None:
            self._ids = {}

    rng = random.Random(7)
    specials = ["NaN", "+Inf", "-Inf", "0", "1e-300", "123456789.123456789", "7e9"]
    for q in (SeriesQuery("dcgm", "gpu_energy", "m", scale=0.001), SeriesQuery("power", "gpu_power", "p")):
        result = []
        for s in range(20):
            values = [[1709251200 + 60 * i + rng.choice((0, 0.5)),
                       rng.choice(specials) if rng.random() < 0.1 else repr(rng.uniform(0, 1e6))]
                      for i in range(rng.randint(0, 50))]
            result.append({"metric": {"__name__": "m", "gpu": str(s), "x": "é\\\""}, "values": values})
        a_stats, b_stats = IngestStats(), IngestStats()
        a = _convert(q, result, _NoIds(), a_stats)
        b = _convert_points(q, result, _NoIds(), b_stats)
        assert a[0] == b[0] and a[1] == b[1]
        assert a[2].to_pylist() == b[2].to_pylist()
        assert a_stats.non_finite_dropped == b_stats.non_finite_dropped > 0


def test_a_fleet_too_big_for_one_request_is_cut_by_points_per_request(stores, tmp_path):
    """A server whose sample limit (Prometheus --query.max-samples) is below one chunk's series x steps refuses
    the request, and the error says which setting to lower; ingest.max_points_per_request cuts the window into
    chunks that fit, and the result is the same as from a server without the limit."""
    prom = start_prometheus_with_history(tmp_path / "small", samples() + cpu_samples(),
                                         extra_args=["--query.max-samples=200"])
    try:
        big = tmp_path / "big.yaml"
        big.write_text("ingest:\n  max_points_per_request: 100000000\n")
        res = run_ingest(prom.base_url, tmp_path / "refused.duckdb", "--config", str(big))
        assert res.returncode == 2, res.stderr
        assert "too many samples" in res.stderr and "lower ingest.max_points_per_request" in res.stderr
        assert "Traceback" not in res.stderr
        small = tmp_path / "small.yaml"
        small.write_text("ingest:\n  max_points_per_request: 150\n")
        res = run_ingest(prom.base_url, tmp_path / "cut.duckdb", "--config", str(small))
        assert res.returncode == 0, res.stderr
    finally:
        prom.stop()
    clean = tmp_path / "clean.duckdb"
    assert run_ingest(stores["prometheus"], clean).returncode == 0
    cut, whole = dump(tmp_path / "cut.duckdb"), dump(clean)
    for table in ("samples", "energy_intervals", "fct_job_gpu_hour"):     # (coverage: in more, smaller chunks)
        assert cut[table] == whole[table], table
