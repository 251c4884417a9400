"""Hostile files against the real programs: each attack is replayed on `wattprint` / `wattprint-exporter`
processes (or their main()) with real files, FIFOs and directories, and must end in one clear line or a
counted, logged skip, never a hang, a traceback, a network fetch or a secret in the metrics.

The figures each test measures are printed with `pytest -s`.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, require_tool, tools_required
from tests.exporter_proc import running_exporter, wait_until
from tests.test_serve_intensity import Serve, errors, get, intensity, wait_for
from wattprint.exporter.jobs.mapping_dir import MAX_FILE_BYTES as MAPPING_FILE_BYTES
from wattprint.exporter.jobs.mapping_dir import MAX_FILES_PER_GPU, MAX_JOBS_PER_GPU
from wattprint.pipeline import db
from wattprint.pipeline.errors import DatabaseWriteError, InputError
from wattprint.pipeline.sources.intensity import _common
from wattprint.pipeline.sources.intensity._common import MAX_INPUT_BYTES

JOBS_CSV = ("job_id,project,phase,cluster,user,start,end,nodes,gpus\n"
            "j1,p,pretraining,ci,u,2024-03-01T00:00:00Z,2024-03-01T02:00:00Z,n1,1\n")
INTENSITY_CSV = "timestamp,zone,intensity_g_per_kwh\n2024-03-01T00:00:00Z,FR,50\n"


def figure(name: str, value: object) -> None:
    print(f"\n[figure] {name}: {value}")


def wattprint(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
              timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATTPRINT_")}
    t0 = time.monotonic()
    res = subprocess.run([*prefix, sys.executable, "-m", "wattprint.pipeline.cli", *args], cwd=REPO,
                         capture_output=True,
                         text=True, timeout=timeout, env={**base, "PYTHONPATH": str(REPO), **(env or {})})
    return res, time.monotonic() - t0


def one_line_error(res: subprocess.CompletedProcess[str], verb: str) -> str:
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wattprint {verb}: error: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the database -------------------------------------------------------------------------------------------

def _unprivileged_prefix() -> tuple[str, ...]:
    """How to run the CLI so that directory permissions apply to it.

    root ignores them, so as root the CLI runs in a user namespace where root's files are its own but it has
    no capability (the same checks as any user on their own files); other users need nothing.
    """
    if os.geteuid() != 0:
        return ()
    # as root, unshare(1) takes away root's override of permissions; CI must have it (require_tool fails there)
    unshare = require_tool("unshare")
    prefix = (unshare, "--user", "--map-user=65534", "--map-group=65534")
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        msg = f"user namespaces unavailable here: {probe.stderr.strip()}"
        if tools_required():
            pytest.fail(f"{msg}; required because CI=true or WATTPRINT_REQUIRE_TOOLS=1")
        pytest.skip(msg)
    return prefix


VERBS = {
    "jobs import": lambda d: ("jobs", "import", str(d / "more.csv"), "--format", "csv"),
    "intensity import": lambda d: ("intensity", "import", str(d / "i.csv"), "--format", "csv"),
    # the database is opened before Prometheus is asked anything: the port is never connected to
    "ingest": lambda d: ("ingest", "--prometheus", "http://127.0.0.1:9", "--start", "2024-03-01T00:00:00Z",
                         "--end", "2024-03-01T01:00:00Z"),
}


@pytest.mark.parametrize("verb", list(VERBS))
def test_import_into_a_read_only_directory_is_one_line_and_keeps_the_data(tmp_path, verb):
    prefix = _unprivileged_prefix()
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "jobs.csv").write_text(JOBS_CSV)
    (inputs / "more.csv").write_text(JOBS_CSV.replace("j1,", "j2,"))
    (inputs / "i.csv").write_text(INTENSITY_CSV)
    store = tmp_path / "store"
    store.mkdir()
    dbfile = store / "w.duckdb"
    res, _ = wattprint("jobs", "import", str(inputs / "jobs.csv"), "--format", "csv", "--db", str(dbfile))
    assert res.returncode == 0, res.stderr
    before = sha256(dbfile)
    store.chmod(0o555)
    try:
        res, took = wattprint(*VERBS[verb](inputs), "--db", str(dbfile), prefix=prefix)
    finally:
        store.chmod(0o755)
    line = one_line_error(res, verb)
    figure(f"{verb} into a 0555 directory", f"exit {res.returncode} in {took:.2f} s: {line}")
    assert res.returncode == 2, res.stderr
    assert str(dbfile) in line and "not writable" in line and "--db" in line, line
    assert sorted(p.name for p in store.iterdir()) == ["w.duckdb"]        # no WAL, nothing else
    assert sha256(dbfile) == before
    with duckdb.connect(str(dbfile), read_only=True, config=db.duckdb_config()) as con:
        assert con.execute("SELECT job_id FROM jobs").fetchall() == [("j1",)]


def test_a_commit_that_cannot_write_its_journal_is_one_error_and_keeps_the_data(tmp_path):
    """The directory check happens at connect; a write that fails later (disk full, permissions changed
    meanwhile) is the same kind of one-line error. The journal path made a directory makes the commit fail
    for root too."""
    dbfile = tmp_path / "w.duckdb"
    con = db.connect(dbfile)
    con.execute("CREATE TABLE t (i INTEGER)")
    con.execute("CHECKPOINT")
    (tmp_path / "w.duckdb.wal").mkdir()
    try:
        with pytest.raises(DatabaseWriteError) as caught, db.transaction(con):
            con.execute("INSERT INTO t VALUES (1)")
        assert caught.value.exit_code == 1
        message = caught.value.message()
        assert "\n" not in message and str(dbfile) in message and "cannot write the database" in message, message
        assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)
    finally:
        con.close()
        (tmp_path / "w.duckdb.wal").rmdir()
    with duckdb.connect(str(dbfile), read_only=True, config=db.duckdb_config()) as check:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (0,)


def _sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE jobs (job_id TEXT)")
    con.execute("INSERT INTO jobs VALUES ('from-sqlite')")
    con.commit()
    con.close()


NOT_DUCKDB = {
    "sqlite": (_sqlite, "is an SQLite database, not a DuckDB one"),
    "random": (lambda p: p.write_bytes(bytes(range(256)) * 32), "is not a DuckDB database file"),
    "empty": (lambda p: p.write_bytes(b""), "is empty, not a DuckDB database"),
    "directory": (lambda p: p.mkdir(), "is a directory, not a DuckDB database file"),
    "fifo": (lambda p: os.mkfifo(p), "is not a regular file"),
}


@pytest.mark.parametrize("kind", list(NOT_DUCKDB))
def test_a_file_that_is_not_duckdb_is_one_line_and_fetches_nothing(tmp_path, kind):
    make, fragment = NOT_DUCKDB[kind]
    target = tmp_path / f"{kind}.db"
    make(target)
    before = sha256(target) if target.is_file() else None
    (tmp_path / "jobs.csv").write_text(JOBS_CSV)
    home = tmp_path / "home"      # DuckDB puts what it downloads under ~/.duckdb/extensions
    home.mkdir()
    res, took = wattprint("jobs", "import", str(tmp_path / "jobs.csv"), "--format", "csv", "--db", str(target),
                          env={"HOME": str(home)}, timeout=30)
    line = one_line_error(res, "jobs import")
    figure(f"{kind} file as --db", f"exit {res.returncode} in {took:.2f} s: {line}")
    assert res.returncode == 2
    assert str(target) in line and fragment in line, line
    assert "sqlite_scanner" not in res.stderr and "INSTALL" not in res.stderr
    assert list(home.iterdir()) == []
    if before is not None:
        assert sha256(target) == before
    if kind == "sqlite":
        con = sqlite3.connect(target)
        assert con.execute("SELECT job_id FROM jobs").fetchall() == [("from-sqlite",)]
        con.close()


def test_every_connection_has_extension_loading_off(tmp_path):
    opens = (lambda: db.connect(":memory:"), lambda: db.connect(tmp_path / "w.duckdb"),
             lambda: db.connect(tmp_path / "w.duckdb", read_only=True))
    for open_ in opens:
        con = open_()
        try:
            got = con.execute("SELECT current_setting('autoinstall_known_extensions'), "
                              "current_setting('autoload_known_extensions'), "
                              "current_setting('allow_community_extensions')").fetchone()
            assert got == (False, False, False)
        finally:
            con.close()


# -- serve-intensity --source csv and intensity import: FIFOs and oversized files ---------------------------

HOUR = timedelta(hours=1)


def _now_csv(value: float, zones: tuple[str, ...] = ("FR",)) -> str:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return "timestamp,zone,intensity_g_per_kwh\n" + "".join(
        f"{(hour + k * HOUR).isoformat().replace('+00:00', 'Z')},{z},{value}\n" for z in zones for k in (-1, 0, 1))


def _serve_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "wattprint.pipeline.cli", "serve-intensity", *args, "--web.listen-address",
            "127.0.0.1:0"]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def start(*args: str, **kw: Any) -> Serve:
        started.append(Serve(tmp_path, *args, **kw))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def _sparse(path: Path, size: int) -> None:
    with path.open("wb") as f:
        f.truncate(size)


@pytest.mark.parametrize("kind", ["fifo", "oversized", "directory"])
def test_serve_intensity_refuses_a_hostile_csv_at_start_at_once(tmp_path, kind):
    path = tmp_path / "intensity.csv"
    if kind == "fifo":
        os.mkfifo(path)           # nobody ever writes: opening it for reading used to wait forever
        fragment = "cannot read the file (a FIFO, not a regular file); check the path"
    elif kind == "directory":
        path.mkdir()
        fragment = "cannot read the file (a directory, not a regular file); check the path"
    else:
        _sparse(path, MAX_INPUT_BYTES + 1)
        fragment = f"file is {MAX_INPUT_BYTES + 1:,} bytes, above the limit of {MAX_INPUT_BYTES:,} bytes (64 MiB)"
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATTPRINT_")}
    t0 = time.monotonic()
    res = subprocess.run(_serve_argv("--source", "csv", "--csv", str(path), "--zone", "FR"), cwd=REPO,
                         capture_output=True, text=True, timeout=30, env={**base, "PYTHONPATH": str(REPO)})
    took = time.monotonic() - t0
    line = one_line_error(res, "serve-intensity")
    figure(f"{kind} as serve-intensity --csv at start", f"exit {res.returncode} in {took:.2f} s: {line}")
    assert res.returncode == 2
    assert line.startswith(f"wattprint serve-intensity: error: --csv: {path}") and fragment in line, line


@pytest.mark.parametrize("kind", ["fifo", "oversized"])
def test_intensity_import_refuses_a_hostile_file_at_once(tmp_path, kind):
    path = tmp_path / "intensity.csv"
    if kind == "fifo":
        os.mkfifo(path)
        fragment = "not a regular file (a FIFO)"
    else:
        _sparse(path, MAX_INPUT_BYTES + 1)
        fragment = f"above the limit of {MAX_INPUT_BYTES:,} bytes (64 MiB); split it"
    dbfile = tmp_path / "w.duckdb"
    for fmt in ("csv", "electricitymaps-json"):
        res, took = wattprint("intensity", "import", str(path), "--format", fmt, "--zone", "FR", "--db", str(dbfile),
                              timeout=30)
        line = one_line_error(res, "intensity import")
        figure(f"{kind} as intensity import --format {fmt}", f"exit {res.returncode} in {took:.2f} s: {line}")
        assert res.returncode == 2 and f"{path}: " in line and fragment in line, line
    assert not dbfile.exists()


@pytest.mark.parametrize("target", ["jobs file", "config", "phase rules"])
def test_a_fifo_as_any_other_input_file_is_refused_at_once(tmp_path, target):
    """jobs import's file, --config and --rules were read with a blocking open: a FIFO hung the verb."""
    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(JOBS_CSV)
    args = {"jobs file": [str(fifo)], "config": [str(jobs), "--config", str(fifo)],
            "phase rules": [str(jobs), "--rules", str(fifo)]}[target]
    res, took = wattprint("jobs", "import", *args, "--format", "csv", "--db", str(tmp_path / "w.duckdb"), timeout=30)
    line = one_line_error(res, "jobs import")
    figure(f"FIFO as the {target} of jobs import", f"exit {res.returncode} in {took:.2f} s: {line}")
    assert res.returncode == 2 and str(fifo) in line and "a FIFO, not a regular file" in line, line


def test_serve_intensity_counts_a_csv_replaced_by_a_fifo_or_a_huge_file_and_recovers(serve, tmp_path):
    path = tmp_path / "intensity.csv"
    path.write_text(_now_csv(41.0, ("FR", "DE")))
    s = serve("--source", "csv", "--csv", str(path), "--zone", "FR", "--zone", "DE", "--refresh-interval", "0.2",
              "--log.level", "info")
    wait_for(s, lambda m: intensity(m, "FR")[0] == 41.0 and intensity(m, "DE")[0] == 41.0, what="the first file")

    def scrape_times(n: int) -> float:
        worst = 0.0
        for _ in range(n):
            t0 = time.monotonic()
            m = s.metrics()
            worst = max(worst, time.monotonic() - t0)
            assert intensity(m, "FR") == (41.0, "csv", "lifecycle")         # the last good value, not a fallback
            assert get(m, "wattprint_grid_intensity_fallback", zone="FR") == 0
        return worst

    path.unlink()
    os.mkfifo(path)
    m = wait_for(s, lambda m: errors(m, "FR", "connection") >= 3 and errors(m, "DE", "connection") >= 3,
                 what="the FIFO counted on every zone")
    refreshes = get(m, "wattprint_grid_intensity_refreshes_total", zone="FR")
    worst = scrape_times(20)
    m = wait_for(s, lambda m: get(m, "wattprint_grid_intensity_refreshes_total", zone="FR") >= refreshes + 3,
                 what="refreshes going on while the FIFO is there")
    figure("FIFO swapped in while running", f"{errors(m, 'FR', 'connection'):.0f} connection errors on FR, "
           f"slowest of 20 scrapes {worst * 1000:.0f} ms, last good value kept")
    assert "cannot read the file (a FIFO, not a regular file)" in s.stderr()

    path.unlink()
    _sparse(path, MAX_INPUT_BYTES + 1)
    parse_before = errors(m, "FR", "parse")
    m = wait_for(s, lambda m: errors(m, "FR", "parse") >= parse_before + 3, what="the oversized file counted")
    worst = scrape_times(10)
    figure("file over the limit swapped in while running",
           f"{errors(m, 'FR', 'parse') - parse_before:.0f} parse errors on FR, slowest scrape {worst * 1000:.0f} ms")
    assert f"above the limit of {MAX_INPUT_BYTES:,} bytes" in s.stderr()

    tmp = tmp_path / "next.csv"
    tmp.write_text(_now_csv(42.5, ("FR", "DE")))
    tmp.replace(path)                             # how a cron job or a ConfigMap update puts a file in place
    wait_for(s, lambda m: intensity(m, "FR")[0] == 42.5 and intensity(m, "DE")[0] == 42.5, what="the recovery")
    assert s.stop() == 0 and "Traceback" not in s.stderr()


def test_serve_intensity_reads_a_changed_csv_once_for_all_zones(serve, tmp_path):
    zones = tuple(f"Z{i:02d}" for i in range(12))
    path = tmp_path / "intensity.csv"
    path.write_text(_now_csv(10.0, zones))
    s = serve("--source", "csv", "--csv", str(path), *(a for z in zones for a in ("--zone", z)),
              "--refresh-interval", "0.2", "--log.level", "info")
    wait_for(s, lambda m: all(intensity(m, z)[0] == 10.0 for z in zones), what="the first file")
    reads = s.stderr().count('msg="csv read" file=')
    for value in (11.0, 12.0, 13.0):
        tmp = tmp_path / "next.csv"
        tmp.write_text(_now_csv(value, zones))
        tmp.replace(path)
        wait_for(s, lambda m, v=value: all(intensity(m, z)[0] == v for z in zones), what=f"value {value}")
        time.sleep(0.5)                           # a few more refresh rounds of every zone
    got = s.stderr().count('msg="csv read" file=') - reads
    figure("CSV reads for 3 changes, 12 zones refreshed every 0.2 s", got)
    assert got == 3, s.stderr()


def test_the_streamed_lines_are_the_whole_texts_lines(monkeypatch):
    """The streamed reader (serve-intensity, intensity import of the generic CSV) splits lines and finds the
    line of a non-UTF-8 byte as the whole-text reader does, wherever the chunks are cut."""
    rng = random.Random(7)
    pieces = [b"a", b",", b"\n", b"\r", b"\r\n", b"\x0b", b"\x1c", "\u00e9".encode(), "\u2028".encode(), b"\xff",
              b"\xc3", b'"', codecs.BOM_UTF8]
    for _ in range(3000):
        raw = (codecs.BOM_UTF8 if rng.random() < 0.3 else b"") + b"".join(rng.choice(pieces)
                                                                          for _ in range(rng.randint(0, 30)))
        monkeypatch.setattr(_common, "CHUNK_BYTES", rng.randint(1, 7))
        bom = 3 if raw.startswith(codecs.BOM_UTF8) else 0
        try:
            want: tuple[str, object] = ("lines", raw[bom:].decode("utf-8").splitlines(keepends=True))
        except UnicodeDecodeError as e:
            line = raw[:bom + e.start].count(b"\n") + 1
            want = ("error", f"x:{line}")
        try:
            got: tuple[str, object] = ("lines", list(_common.iter_lines(io.BytesIO(raw), "x")))
        except InputError as e:
            got = ("error", e.where)
        assert got == want, raw


# -- wattprint-exporter --job-discovery mapping-dir: links to secrets, floods of files and jobs -------------

SECRET_LINES = ("root_password_hunter2", "AWS_SECRET_KEY_abc123")     # both valid job ids if ever read


def _hostile_mapping_dir(root: Path) -> Path:
    secret = root / "secret"
    secret.write_text("".join(f"{line}\n" for line in SECRET_LINES))
    mapping = root / "mapping"
    mapping.mkdir()
    (mapping / "0").write_text("legit-0\n")
    (mapping / "1").write_text("legit-1\n")
    (mapping / "0.1").symlink_to(secret)             # a link to a file only the exporter's capabilities can read
    (mapping / "1.1").symlink_to(root)               # to a directory
    os.link(secret, mapping / "0.2")                 # another name for the secret itself
    os.mkfifo(mapping / "1.2")
    n = 0
    for gpu in (0, 1):                               # 40 files of 64 KiB of distinct ids per GPU
        for inst in range(3, 43):
            ids = []
            size = 0
            while size + 9 <= MAPPING_FILE_BYTES:
                ids.append(f"j{n:07d}\n")
                size += 9
                n += 1
            (mapping / f"{gpu}.{inst}").write_text("".join(ids))
    return mapping


def test_mapping_dir_reads_no_link_and_caps_files_and_jobs_per_gpu(tmp_path):
    mapping = _hostile_mapping_dir(tmp_path)
    with running_exporter("--backend", "replay", "--replay-gpus", "2", "--job-discovery", "mapping-dir",
                          "--mapping-dir", str(mapping), "--poll-interval", "0.5") as (proc, port):
        url = f"http://127.0.0.1:{port}/metrics"
        assert wait_until(lambda: 'reason="too_many_jobs"' in requests.get(url, timeout=10).text, timeout=30)
        time.sleep(1.5)                              # a few more polls over the same directory
        t0 = time.monotonic()
        page = requests.get(url, timeout=10).text
        scrape = time.monotonic() - t0
        hwm_kib = next(int(line.split()[1]) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                       if line.startswith("VmHWM:"))
        assert proc.poll() is None
    families = {f.name: f for f in text_string_to_metric_families(page)}
    job_ids: dict[str, set[str]] = {}
    for s in families["wattprint_job_energy_joules"].samples:
        job_ids.setdefault(s.labels["gpu"], set()).add(s.labels["job_id"])
    errors = {s.labels["reason"]: s.value for s in families["wattprint_job_discovery_errors"].samples
              if s.name.endswith("_total")}
    poll = next(s.value for s in families["wattprint_exporter_poll_duration_seconds"].samples)
    entries = sorted(mapping.iterdir())
    size = sum(p.lstat().st_size for p in entries if p.is_file() and not p.is_symlink())
    figure(f"hostile mapping dir (2 GPUs, {len(entries)} entries, {size:,} bytes, a symlink and a hard link to a "
           "secret)",
           f"jobs per GPU {sorted(len(v) for v in job_ids.values())}, page {len(page.encode()):,} bytes, "
           f"poll {poll * 1000:.1f} ms, scrape {scrape * 1000:.0f} ms, VmHWM {hwm_kib / 1024:.0f} MiB, "
           f"errors {errors}")
    for line in SECRET_LINES:
        assert line not in page
    assert set(job_ids) == {"0", "1"}
    assert all(len(ids) == MAX_JOBS_PER_GPU for ids in job_ids.values()), {g: len(v) for g, v in job_ids.items()}
    assert "legit-0" in job_ids["0"] and "legit-1" in job_ids["1"]
    assert errors["symlink"] >= 2 and errors["hardlink"] >= 1 and errors["unreadable"] >= 1
    assert errors["too_many_files"] >= 2 * (42 - MAX_FILES_PER_GPU) and errors["too_many_jobs"] > 0
    assert len(page.encode()) < 256 * 1024            # was 37 MB for 10 such files


def test_mapping_dir_caps_are_exact(tmp_path):
    """The limits as an operator would check them: the 64th job of a GPU is exported, the 65th is counted."""
    from wattprint.exporter.backends.base import GpuInfo, GpuReading
    from wattprint.exporter.jobs.mapping_dir import MappingDirDiscovery

    readings = [GpuReading(info=GpuInfo(index=str(i), uuid=f"GPU-{i}"), timestamp=0.0, pids=None) for i in (0, 1)]
    (tmp_path / "0").write_text("".join(f"a{i}\n" for i in range(MAX_JOBS_PER_GPU)))        # exactly the cap
    (tmp_path / "0.1").write_text("a0\nb0\nb1\n")                                           # one old, two over
    (tmp_path / "1").write_text("".join(f"c{i}\n" for i in range(MAX_JOBS_PER_GPU + 10)))   # 10 lines over
    for inst in range(1, MAX_FILES_PER_GPU + 2):                          # with the board's own file: 2 over
        (tmp_path / f"1.{inst}").write_text("c0\n")
    d = MappingDirDiscovery(tmp_path)
    found = d.discover(readings)
    assert {j.job_id for j in found["0"]} == {f"a{i}" for i in range(MAX_JOBS_PER_GPU)}
    assert {j.job_id for j in found["1"]} == {f"c{i}" for i in range(MAX_JOBS_PER_GPU)}
    assert d.errors == {"too_many_jobs": 2 + 10, "too_many_files": 2}
