"""Fault and load suite: real processes, faults injected while they run, the results compared with the truth.

Every test runs the real programs (Prometheus from Debian, `wattprint-exporter`, `wattprint ingest`,
`jobs import`, `report`) as subprocesses and injects its fault from outside: SIGKILL, a restart on the
same port and data, a replay GPU made to fail through `--replay-fail-file`, concurrent readers. The
figures each test measures (requests, retries, faults, outage seconds, energy lost, rows compared, peak
memory) are printed at the end of the module (`pytest -s`) and written to `$WATTPRINT_ARTIFACTS/faults.json`
(else a temporary directory); docs/reliability.md quotes a run. Durations are recorded, never asserted.

Run alone with `pytest -m faults -s tests/test_faults.py`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, free_port, require_tool, wait_http
from tests.ingest_history import samples
from tests.promstack import RunningStore, start_prometheus_with_history
from wattprint.exporter.backends.replay import default_trace_path, load_trace
from wattprint.pipeline.settings import load_settings

pytestmark = [pytest.mark.faults, pytest.mark.slow]

FIGURES: dict[str, Any] = {}

# A 48-hour window around the 4-hour history at a 1 s step: 16 query_range chunks for each of the
# default queries (GPU and host; 160 requests), so a fault injected after the first few lands mid-run.
WINDOW = ("2024-02-29T00:00:00Z", "2024-03-02T00:00:00Z")
STEP = "1"
PROGRESS = re.compile(r"^  \S+: \S+ \.\. \S+: \d+ series, \d+ samples$")
RETRY = re.compile(r"failed \(attempt (\d+) of (\d+): (.*)\); retrying in ([0-9.]+) s")


@pytest.fixture(scope="module", autouse=True)
def figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    FIGURES.clear()
    mem_kib = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                    if line.startswith("MemTotal:")), 0)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    FIGURES["machine"] = {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kib / 2**20, 1),
                          "python": platform.python_version(), "date": datetime.now(UTC).isoformat(timespec="seconds")}
    yield FIGURES
    text = json.dumps(FIGURES, indent=1, sort_keys=True, default=str)
    out = Path(os.environ.get("WATTPRINT_ARTIFACTS") or tmp_path_factory.mktemp("faults"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "faults.json").write_text(text + "\n", encoding="utf-8")
    print(f"\nfault suite figures ({out / 'faults.json'}):\n{text}")


# -- processes -----------------------------------------------------------------------------------------------


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattprint.pipeline.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def popen_cli(*args: str) -> subprocess.Popen[str]:
    """`wattprint ARGS` with stdout and stderr merged into one unbuffered, line-by-line pipe."""
    return subprocess.Popen([sys.executable, "-m", "wattprint.pipeline.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def kill_store(store: RunningStore) -> None:
    store.proc.send_signal(signal.SIGKILL)
    store.proc.wait(10)


def restart_store(store: RunningStore, timeout: float = 60.0) -> None:
    """Start the same server again: same argv, so the same port and data directory."""
    with store.log_path.open("ab") as log:
        store.proc = subprocess.Popen(store.proc.args, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and store.proc.poll() is None:
        try:
            if requests.get(store.base_url + "/-/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{store.kind} did not come back on {store.base_url}:\n{store.log_tail()}")


def start_scraping_prometheus(tmp: Path, target: str) -> RunningStore:
    """A Prometheus scraping `target` every second."""
    binary = require_tool("prometheus")
    tmp.mkdir(parents=True, exist_ok=True)
    cfg = tmp / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                   f"scrape_configs:\n  - job_name: wattprint\n    static_configs:\n      - targets: ['{target}']\n")
    port = free_port()
    log_path = tmp / "prometheus.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([binary, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    store = RunningStore("prometheus", f"http://127.0.0.1:{port}", proc, tmp / "data", log_path)
    try:
        wait_http(store.base_url + "/-/ready", timeout=30)
    except TimeoutError:
        store.stop()
        raise
    return store


@dataclass
class Exporter:
    """The real exporter on a fixed port, so that it can be killed and started again in place."""

    args: tuple[str, ...]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "wattprint.exporter", "--web.listen-address", f"127.0.0.1:{self.port}",
                 *self.args],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        try:
            wait_http(f"http://127.0.0.1:{self.port}/-/healthy", timeout=30)
        except TimeoutError:
            raise AssertionError(f"exporter did not start:\n{self.log_path.read_text()[-2000:]}") from None

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "the exporter was not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def metrics(self) -> dict[str, Any]:
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return {f.name: f for f in text_string_to_metric_families(text)}


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def wait_for(pred: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def raw_series(base: str, selector: str, lo: float, hi: float) -> dict[str, list[tuple[float, float]]]:
    """Every stored sample of `selector` in (lo, hi], per `gpu` label (or "" without one), from Prometheus."""
    r = requests.get(f"{base}/api/v1/query",
                     params={"query": f"{selector}[{math.ceil(hi - lo) * 1000}ms]", "time": repr(hi)}, timeout=10)
    r.raise_for_status()
    return {s["metric"].get("gpu", ""): [(float(t), float(v)) for t, v in s["values"]]
            for s in r.json()["data"]["result"]}


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the replay trace: what each virtual GPU truly drew ---------------------------------------------------------

TRACE = load_trace(default_trace_path())
MAX_W = max(TRACE.power_mw) / 1000.0
# A scraped counter is the one read at the poll whose end the exporter stamps in
# wattprint_exporter_last_successful_poll_timestamp_seconds; the replay read itself happens a little
# before that stamp (reading, job discovery, booking). The tolerance allows this much of it at full power.
STAMP_SKEW_S = 0.05


def truth_j(gpu: int, gpus: int, epoch: float, a: float, b: float) -> float:
    """Energy virtual GPU `gpu` of `gpus` (replay epoch `epoch`) drew between unix times a and b."""
    def el(w: float) -> float:
        return max(0.0, w - epoch) + gpu * TRACE.duration / gpus
    return (TRACE.energy_at(el(b)) - TRACE.energy_at(el(a))) / 1000.0


def last_at_or_before(points: list[tuple[float, float]], t: float) -> tuple[float, float]:
    return [p for p in points if p[0] <= t + 1e-9][-1]


# -- database comparison ------------------------------------------------------------------------------------------

# Ids (series_id, stream_id) come from sequences and need not match between two databases; rows are
# compared by their natural keys instead.
DUMP = {
    "series": "SELECT * EXCLUDE (series_id, labels) FROM series",
    "samples": "SELECT se.fingerprint, s.ts, s.value FROM samples s JOIN series se USING (series_id)",
    "ingest_coverage": "SELECT * EXCLUDE (loaded_at) FROM ingest_coverage",
    "energy_intervals": "SELECT st.* EXCLUDE (stream_id), i.* EXCLUDE (stream_id) FROM energy_intervals i"
                        " JOIN streams st USING (stream_id)",
    "energy_gaps": "SELECT st.* EXCLUDE (stream_id), g.* EXCLUDE (stream_id) FROM energy_gaps g"
                   " JOIN streams st USING (stream_id)",
    "fct_job_gpu_hour": "SELECT * FROM fct_job_gpu_hour",
}


def dump(dbfile: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = duckdb.connect(str(dbfile), read_only=True)
    try:
        return {t: con.execute(q + " ORDER BY ALL").fetchall() for t, q in DUMP.items()}
    finally:
        con.close()


def first_difference(a: dict[str, list[tuple[Any, ...]]], b: dict[str, list[tuple[Any, ...]]]) -> str:
    for t in a:
        if a[t] != b[t]:
            extra = [r for r in a[t] if r not in set(b[t])][:2]
            missing = [r for r in b[t] if r not in set(a[t])][:2]
            return f"{t}: {len(a[t])} rows vs {len(b[t])}; only here {extra}; only in the reference {missing}"
    return "identical"


def whole_chunks(dbfile: Path) -> dict[str, int]:
    """Open the database read-write (replaying its WAL) and check that it holds only whole chunks.

    Each ingest_coverage row is one committed chunk: the samples of its query's series inside its window
    must number exactly what it recorded, and no sample may lie outside a recorded chunk.
    """
    con = duckdb.connect(str(dbfile))
    try:
        bad = con.execute(
            "SELECT c.kind, c.start_ts, c.samples, (SELECT count(*) FROM samples s JOIN series se USING (series_id)"
            " WHERE se.query = c.query AND se.kind = c.kind AND s.ts BETWEEN c.start_ts AND c.end_ts) AS n"
            " FROM ingest_coverage c WHERE n <> c.samples").fetchall()
        assert not bad, f"half-written chunks (kind, start, recorded, present): {bad[:5]}"
        chunks, recorded = con.execute("SELECT count(*), coalesce(sum(samples), 0) FROM ingest_coverage").fetchall()[0]
        stored = con.execute("SELECT count(*) FROM samples").fetchall()[0][0]
        assert stored == recorded, f"{stored} samples stored but {recorded} in committed chunks"
        con.execute("CHECKPOINT")
        return {"chunks": int(chunks), "samples": int(stored)}
    finally:
        con.close()


# -- a Prometheus with the known history, and the undisturbed ingest of it ------------------------------------------


@pytest.fixture(scope="module")
def history_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStore]:
    store = start_prometheus_with_history(tmp_path_factory.mktemp("history-prom"), samples())
    yield store
    store.stop()


def ingest_args(url: str, dbfile: Path) -> list[str]:
    return ["ingest", "--prometheus", url, "--start", WINDOW[0], "--end", WINDOW[1], "--step", STEP,
            "--db", str(dbfile)]


@dataclass
class Baseline:
    tables: dict[str, list[tuple[Any, ...]]]
    chunks: int
    seconds: float

    @property
    def rows(self) -> int:
        return sum(len(rows) for rows in self.tables.values())


@pytest.fixture(scope="module")
def baseline(history_store: RunningStore, tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    dbfile = tmp_path_factory.mktemp("baseline") / "undisturbed.duckdb"
    t = time.monotonic()
    res = cli(*ingest_args(history_store.base_url, dbfile))
    seconds = time.monotonic() - t
    assert res.returncode == 0, res.stderr
    chunks = sum(1 for line in res.stderr.splitlines() if PROGRESS.match(line))
    assert chunks == 16 * len(load_settings(None).queries()) and f"in {chunks} chunks" in res.stdout
    FIGURES["undisturbed_ingest"] = {"window": list(WINDOW), "step_s": int(STEP), "requests": chunks,
                                     "seconds": round(seconds, 2)}
    return Baseline(dump(dbfile), chunks, seconds)


# -- Prometheus killed and restarted during an ingest -----------------------------------------------------------

KILL_PROMETHEUS_AFTER = 3     # progress lines (committed chunks)
OUTAGE_S = 3.0


def test_prometheus_killed_and_restarted_during_ingest(history_store, baseline, tmp_path):
    dbfile = tmp_path / "w.duckdb"
    proc = popen_cli(*ingest_args(history_store.base_url, dbfile))
    assert proc.stdout is not None
    lines: list[str] = []
    times: dict[str, float] = {}
    restarter: threading.Thread | None = None

    def bring_back() -> None:
        time.sleep(OUTAGE_S)
        restart_store(history_store)
        times["up"] = time.monotonic()

    t_start = time.monotonic()
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if restarter is None and sum(1 for x in lines if PROGRESS.match(x)) == KILL_PROMETHEUS_AFTER:
                kill_store(history_store)
                times["killed"] = time.monotonic()
                restarter = threading.Thread(target=bring_back, daemon=True)
                restarter.start()
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()
        if restarter is not None:
            restarter.join(90)
    seconds = time.monotonic() - t_start
    out = "\n".join(lines)
    assert restarter is not None and "up" in times, "Prometheus was never killed, or never came back"
    assert proc.returncode == 0, out[-3000:]
    retries = [m for m in map(RETRY.search, lines) if m]
    # the outage is reported: connection errors, each retried with backoff
    assert retries, f"no retry reported:\n{out[-3000:]}"
    assert all("connection" in m.group(3).lower() for m in retries), retries
    chunks = sum(1 for x in lines if PROGRESS.match(x))
    assert chunks == baseline.chunks and f"in {chunks} chunks" in out
    got = dump(dbfile)
    assert got == baseline.tables, first_difference(got, baseline.tables)
    FIGURES["prometheus_restart"] = {
        "faults_injected": 1, "killed_after_chunks": KILL_PROMETHEUS_AFTER,
        "outage_s": round(times["up"] - times["killed"], 2),
        "requests_served": chunks, "failed_attempts_retried": len(retries),
        "retry_errors": sorted({m.group(3).split(":")[0] for m in retries}),
        "backoff_s": [float(m.group(4)) for m in retries], "ingest_s": round(seconds, 2),
        "rows_compared": baseline.rows, "rows_different": 0,
    }


# -- the ingest (the DuckDB writer) SIGKILLed at several points ------------------------------------------------

# (where, progress lines to wait for, extra delay): after the first chunk commits, in the middle of the
# chunks, and after the last chunk, while the derived tables are rebuilt.
KILL_POINTS = (("after chunk 1", 1, 0.0), ("mid-run", 9, 0.03), ("mid-run", 37, 0.01), ("during rebuild", None, 0.0))


def test_ingest_sigkilled_mid_run_opens_clean_and_rerun_completes(history_store, baseline, tmp_path):
    dbfile = tmp_path / "w.duckdb"
    wal = Path(str(dbfile) + ".wal")
    kills: list[dict[str, Any]] = []
    for where, after, delay in KILL_POINTS:
        proc = popen_cli(*ingest_args(history_store.base_url, dbfile))
        assert proc.stdout is not None
        seen = 0
        try:
            for line in proc.stdout:
                seen += bool(PROGRESS.match(line.rstrip("\n")))
                trigger = line.startswith("ingested ") if after is None else seen == after
                if trigger:
                    time.sleep(delay)
                    assert proc.poll() is None, f"ingest finished before the kill point ({where})"
                    proc.send_signal(signal.SIGKILL)
                    break
            proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL, f"{where}: exit {proc.returncode}, not killed"
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        state = whole_chunks(dbfile)          # opens clean: WAL replayed, only whole chunks, checkpoint works
        kills.append({"where": where, "after_chunks": seen, "wal_bytes_left": wal_bytes, **state})
    t = time.monotonic()
    res = cli(*ingest_args(history_store.base_url, dbfile))
    rerun_s = time.monotonic() - t
    assert res.returncode == 0, res.stderr[-3000:]
    got = dump(dbfile)
    assert got == baseline.tables, first_difference(got, baseline.tables)
    FIGURES["ingest_sigkill"] = {"faults_injected": len(kills), "kills": kills, "rerun_s": round(rerun_s, 2),
                                 "rows_compared": baseline.rows, "rows_different": 0}


# -- the exporter restarted mid-window ----------------------------------------------------------------------------

POLL_S = 0.1


def test_exporter_restart_mid_window_with_state_file_loses_nothing_and_counts_nothing_twice(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "0").write_text("train-1\n")
    epoch = time.time() - 20.0
    gpus = 2
    port = free_port()
    state = tmp_path / "state" / "exporter-state.json"
    state.parent.mkdir()
    # --state-interval 10 s (longer than the default, one poll): the SIGKILL leaves a file up to 10 s old,
    # and the raw-counter delta since it is what carries the unsaved polls and the downtime over.
    exporter = Exporter(("--backend", "replay", "--replay-gpus", str(gpus), "--replay-epoch", repr(epoch),
                         "--poll-interval", str(POLL_S), "--hostname", "n1", "--label", "cluster=ci",
                         "--job-discovery", "mapping-dir", "--mapping-dir", str(jobs), "--state-file", str(state),
                         "--state-interval", "10"),
                        port, tmp_path / "exporter.log")
    prom = start_scraping_prometheus(tmp_path / "prom", f"127.0.0.1:{port}")
    try:
        exporter.start()
        wait_for(lambda: len(raw_series(prom.base_url, "wattprint_gpu_energy_joules_total", time.time() - 10,
                                        time.time()).get("0", [])) >= 2, "Prometheus to scrape the exporter")
        w0 = math.ceil(time.time()) + 1
        sleep_until(w0 + 12)
        t_kill = time.time()
        exporter.kill()                    # SIGKILL: no save at exit, the last periodic one is all there is
        state_age = t_kill - json.loads(state.read_text())["saved_unixtime"]
        exporter.start()                   # restores the totals, books the raw delta since the saved one
        t_ready = time.time()
        sleep_until(t_ready + 6)
        w1 = math.floor(time.time())
        sleep_until(w1 + 1)
        energy = raw_series(prom.base_url, "wattprint_gpu_energy_joules_total", w0 - 5, w1)
        stamps = dict(raw_series(prom.base_url, "wattprint_exporter_last_successful_poll_timestamp_seconds",
                                 w0 - 5, w1)[""])
        exporter.stop()
        dbfile = tmp_path / "w.duckdb"
        res = cli("ingest", "--prometheus", prom.base_url, "--start", iso(w0), "--end", iso(w1), "--step", "1",
                  "--db", str(dbfile))
    finally:
        exporter.stop()
        prom.stop()
    assert res.returncode == 0, res.stderr[-3000:]
    assert "state file loaded" in exporter.log_path.read_text()
    con = duckdb.connect(str(dbfile), read_only=True)
    measured = dict(con.execute("SELECT gpu, sum(energy_j) FROM fct_job_gpu_hour GROUP BY gpu").fetchall())
    resets = dict(con.execute(
        "SELECT st.gpu, count(*) FROM energy_intervals i JOIN streams st USING (stream_id)"
        " WHERE i.quality = 'counter_reset' GROUP BY 1").fetchall())
    gpu_stream = dict(con.execute(
        "SELECT st.gpu, sum(i.energy_j) FROM energy_intervals i JOIN streams st USING (stream_id)"
        " WHERE st.kind = 'gpu' GROUP BY 1").fetchall())
    job_j = con.execute("SELECT sum(energy_j) FROM fct_job_gpu_hour WHERE job_id = 'train-1'").fetchall()[0][0]
    con.close()
    assert resets == {}, f"the restart shows as a counter reset: {resets}"
    one_poll_j = MAX_W * POLL_S
    per_gpu = {}
    for g in range(gpus):
        pts = [p for p in energy[str(g)] if p[0] <= w1 + 1e-9]
        (s0, v0), (s1, v1) = last_at_or_before(pts, w0), last_at_or_before(pts, w1)
        inside = [p for p in pts if s0 <= p[0] <= s1]
        drops = [i for i in range(1, len(inside)) if inside[i][1] < inside[i - 1][1]]
        assert drops == [], f"GPU {g}: the exported counter went down across the restart"
        hole = max(inside[i][0] - inside[i - 1][0] for i in range(1, len(inside)))
        assert measured[str(g)] == pytest.approx(v1 - v0, abs=1e-6)           # the counter's increase, once
        assert gpu_stream[str(g)] == pytest.approx(measured[str(g)], abs=1e-6)   # jobs + idle == GPU
        p0, p1 = stamps[s0], stamps[s1]
        true_j = truth_j(g, gpus, epoch, p0, p1)
        tol = 2 * MAX_W * STAMP_SKEW_S
        lost = true_j - measured[str(g)]
        assert lost <= one_poll_j + tol, f"GPU {g}: {lost:.1f} J lost, more than one poll interval"
        assert measured[str(g)] <= true_j + tol                                  # nothing counted twice
        per_gpu[str(g)] = {
            "true_j": round(true_j, 1), "measured_j": round(measured[str(g)], 1), "lost_j": round(lost, 1),
            "one_poll_interval_at_max_power_j": round(one_poll_j, 1), "stamp_tolerance_j": round(tol, 1),
            "prometheus_longest_gap_s": round(hole, 3),
        }
    assert job_j == pytest.approx(measured["0"], abs=1e-6)   # the job on GPU 0 got all of it, downtime included
    FIGURES["exporter_restart"] = {"faults_injected": 1, "window_s": w1 - w0, "poll_interval_s": POLL_S,
                                   "scrape_interval_s": 1, "exporter_down_s": round(t_ready - t_kill, 3),
                                   "state_file_age_at_kill_s": round(state_age, 3), "gpus": per_gpu}


# -- one replay GPU made to fail --------------------------------------------------------------------------------

FAIL_GPU = "1"
FAULTS_CONFIG = """\
clusters:
  ci:
    zone: FR
    pue: 1.2
    nodes: ["n1"]
ingest:
  step_seconds: 1
  max_gap_seconds: 5
"""


@pytest.fixture(scope="module")
def gpu_failure(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 3-GPU replay exporter scraped every second; GPU 1 fails for ~10 s mid-window, then answers again.

    Then ingest, the job ledger and a JSON report of the window, all through the CLI.
    """
    tmp = tmp_path_factory.mktemp("gpu-failure")
    jobs, fail = tmp / "jobs", tmp / "fail-gpus"
    jobs.mkdir()
    for g in range(3):
        (jobs / str(g)).write_text(f"j{g}\n")
    cfg = tmp / "wattprint.yaml"
    cfg.write_text(FAULTS_CONFIG)
    epoch = time.time() - 20.0
    port = free_port()
    exporter = Exporter(("--backend", "replay", "--replay-gpus", "3", "--replay-epoch", repr(epoch),
                         "--poll-interval", str(POLL_S), "--hostname", "n1", "--label", "cluster=ci",
                         "--job-discovery", "mapping-dir", "--mapping-dir", str(jobs), "--replay-fail-file", str(fail)),
                        port, tmp / "exporter.log")
    prom = start_scraping_prometheus(tmp / "prom", f"127.0.0.1:{port}")
    try:
        exporter.start()
        wait_for(lambda: len(raw_series(prom.base_url, "wattprint_gpu_energy_joules_total", time.time() - 10,
                                        time.time()).get("0", [])) >= 2, "Prometheus to scrape the exporter")
        w0 = math.ceil(time.time()) + 1
        sleep_until(w0 + 4)
        fail.write_text(FAIL_GPU + "\n")
        t_fail = time.time()
        sleep_until(t_fail + 2)
        live = exporter.metrics()
        sleep_until(t_fail + 10)
        fail.unlink()
        t_back = time.time()
        sleep_until(t_back + 5)
        w1 = math.floor(time.time())
        sleep_until(w1 + 1)
        energy = raw_series(prom.base_url, "wattprint_gpu_energy_joules_total", w0 - 5, w1)
        up = raw_series(prom.base_url, "wattprint_gpu_up", w0 - 5, w1)
        stamps = dict(raw_series(prom.base_url, "wattprint_exporter_last_successful_poll_timestamp_seconds",
                                 w0 - 5, w1)[""])
        exporter.stop()
        dbfile = tmp / "w.duckdb"
        ingest = cli("ingest", "--prometheus", prom.base_url, "--start", iso(w0), "--end", iso(w1),
                     "--db", str(dbfile), "--config", str(cfg))
    finally:
        exporter.stop()
        prom.stop()
    ledger = tmp / "jobs.csv"
    ledger.write_text("job_id,project,phase,cluster,user,start,end,nodes,gpus\n" + "".join(
        f"j{g},faults,pretraining,ci,u,{iso(w0 - 60)},{iso(w1 + 60)},n1,1\n" for g in range(3)))
    jobs_res = cli("jobs", "import", str(ledger), "--format", "csv", "--db", str(dbfile), "--config", str(cfg))
    h0 = datetime.fromtimestamp(w0, UTC).replace(minute=0, second=0)
    h1 = datetime.fromtimestamp(w1, UTC).replace(minute=0, second=0) + timedelta(hours=1)
    report = cli("report", "--project", "faults", "--start", h0.isoformat(), "--end", h1.isoformat(),
                 "--format", "json", "--db", str(dbfile), "--config", str(cfg))
    return {"epoch": epoch, "w0": w0, "w1": w1, "t_fail": t_fail, "t_back": t_back, "live": live, "energy": energy,
            "up": up, "stamps": stamps, "ingest": ingest, "jobs": jobs_res, "report": report, "db": dbfile}


def test_one_failing_gpu_leaves_the_others_exact_and_loses_nothing(gpu_failure):
    run = gpu_failure
    assert run["ingest"].returncode == 0, run["ingest"].stderr[-3000:]
    assert run["jobs"].returncode == 0, run["jobs"].stderr[-3000:]
    assert run["report"].returncode == 0, run["report"].stderr[-3000:]
    # while it failed: the exporter said so for that GPU only, and kept serving the others
    live = run["live"]
    up_now = {s.labels["gpu"]: s.value for s in live["wattprint_gpu_up"].samples}
    assert up_now == {"0": 1.0, "1": 0.0, "2": 1.0}
    errors = {(s.labels["gpu"], s.labels["call"]) for s in live["wattprint_gpu_collection_errors"].samples}
    assert ("1", "energy") in errors and not any(g != FAIL_GPU for g, _ in errors)
    w0, w1 = run["w0"], run["w1"]
    down = {g: sum(1 for t, v in pts if w0 < t <= w1 and v == 0) for g, pts in run["up"].items()}
    assert down["1"] >= 5 and down["0"] == down["2"] == 0, down
    con = duckdb.connect(str(run["db"]), read_only=True)
    measured = dict(con.execute("SELECT gpu, sum(energy_j) FROM fct_job_gpu_hour GROUP BY gpu").fetchall())
    by_job = dict(con.execute("SELECT job_id, sum(energy_j) FROM fct_job_gpu_hour GROUP BY 1").fetchall())
    con.close()
    per_gpu = {}
    for g in range(3):
        pts = run["energy"][str(g)]
        (s0, v0), (s1, v1) = last_at_or_before(pts, w0), last_at_or_before(pts, w1)
        assert measured[str(g)] == pytest.approx(v1 - v0, abs=1e-6)      # every joule Prometheus holds
        true_j = truth_j(g, 3, run["epoch"], run["stamps"][s0], run["stamps"][s1])
        # the others are unaffected; the failed board's outage energy is booked when it answers again
        assert measured[str(g)] == pytest.approx(true_j, abs=2 * MAX_W * STAMP_SKEW_S)
        assert by_job[f"j{g}"] == pytest.approx(measured[str(g)], abs=1e-6)
        flat = sum(1 for (ta, va), (tb, vb) in zip(pts, pts[1:], strict=False)
                   if run["t_fail"] + 1 < ta and tb < run["t_back"] and va == vb)
        per_gpu[str(g)] = {"true_j": round(true_j, 1), "measured_j": round(measured[str(g)], 1),
                           "lost_j": round(true_j - measured[str(g)], 1), "scrapes_with_up_0": down[str(g)],
                           "flat_counter_scrapes_during_outage": flat}
    report = json.loads(run["report"].stdout)
    # every joule went to the ledger's jobs, so the report's GPU energy is the GPUs' measured energy
    assert report["total"]["energy_kwh"] == pytest.approx(sum(measured.values()) / 3.6e6, rel=1e-9)
    FIGURES["gpu_failure"] = {"faults_injected": 1, "failed_gpu": FAIL_GPU,
                              "outage_s": round(run["t_back"] - run["t_fail"], 2), "window_s": w1 - w0,
                              "gpus": per_gpu, "report_data_quality": report["data_quality"]}


def test_one_failing_gpu_shows_its_gap_in_the_report_data_quality(gpu_failure):
    run = gpu_failure
    assert run["report"].returncode == 0, run["report"].stderr[-3000:]
    dq = json.loads(run["report"].stdout)["data_quality"]
    con = duckdb.connect(str(run["db"]), read_only=True)
    gap_gpus = {g for (g,) in con.execute(
        "SELECT DISTINCT st.gpu FROM energy_gaps JOIN streams st USING (stream_id)").fetchall()}
    con.close()
    assert dq["gaps"]["count"] > 0 and any("telemetry gaps" in w for w in dq["warnings"]), dq
    assert gap_gpus == {FAIL_GPU}


# -- load: 10 concurrent report runs on one database -------------------------------------------------------------

REPORT_ARGS = (
    ("--project", "idefics", "--month", "2024-03", "--format", "json"),
    ("--month", "2024-03", "--format", "json", "--layers", "all"),
    ("--project", "idefics", "--month", "2024-03", "--format", "md"),
    ("--month", "2024-03", "--format", "html"),
    ("--project", "bloom-mini", "--month", "2024-03", "--format", "csv"),
)
RSS_BOUND = 1536 * 2**20
# Runs `python ARGS` in a child and prints that child's peak RSS. The child must not be forked straight from
# pytest: Linux keeps the parent's high-water RSS in ru_maxrss across fork and exec, so every child of a
# 400 MiB pytest would report at least 400 MiB. Forked from this small wrapper, it reports its own.
PEAK_RSS_WRAPPER = """\
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(f"peak_rss_kib={usage.ru_maxrss}", file=sys.stderr)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""
GENERATED = re.compile(r"(?i)(generated(?: by wattprint at)?) \d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d)?Z?(?: UTC)?")


def test_ten_concurrent_reports_on_one_database(report_fleet, tmp_path):
    dbfile, cfg = report_fleet
    runs = [args for args in REPORT_ARGS for _ in range(2)]
    procs = []
    t = time.monotonic()
    for i, args in enumerate(runs):
        with (tmp_path / f"{i}.out").open("wb") as out, (tmp_path / f"{i}.err").open("wb") as err:
            procs.append(subprocess.Popen([sys.executable, "-c", PEAK_RSS_WRAPPER, "-m", "wattprint.pipeline.cli",
                                           "report",
                                           "--db", str(dbfile), "--config", str(cfg), *args],
                                          cwd=REPO, stdout=out, stderr=err))
    codes = [p.wait(300) for p in procs]
    seconds = time.monotonic() - t
    outputs = [(tmp_path / f"{i}.out").read_text(encoding="utf-8") for i in range(len(runs))]
    rss = []
    for i, rc in enumerate(codes):
        err = (tmp_path / f"{i}.err").read_text(encoding="utf-8")
        assert rc == 0, (runs[i], err[-2000:])
        assert outputs[i].strip(), runs[i]
        peak = re.findall(r"^peak_rss_kib=(\d+)$", err, re.M)
        assert peak, err[-2000:]
        rss.append(int(peak[-1]) * 1024)

    def normal(i: int) -> Any:
        if "json" in runs[i]:
            doc = json.loads(outputs[i])
            doc.pop("generated_at")
            return doc
        return GENERATED.sub(r"\1 <time>", outputs[i])

    for i in range(0, len(runs), 2):
        assert normal(i) == normal(i + 1), f"two runs of {runs[i]} differ"
    assert max(rss) < RSS_BOUND, [round(r / 2**20) for r in rss]
    FIGURES["concurrent_reports"] = {"processes": len(runs), "distinct_arg_sets": len(REPORT_ARGS), "errors": 0,
                                     "peak_rss_mib_max": round(max(rss) / 2**20, 1),
                                     "peak_rss_mib_min": round(min(rss) / 2**20, 1), "wall_s": round(seconds, 2)}
