"""Hostile files against the real programs: each attack is replayed on `wattprint` / `wattprint-exporter`
processes (or their main()) with real files, FIFOs and directories, and must end in one clear line or a
counted, logged skip, never a hang, a traceback, a network fetch or a secret in the metrics.

The figures each test measures are printed with `pytest -s`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from pipeline import db
from pipeline.errors import DatabaseWriteError
from tests.conftest import REPO

JOBS_CSV = ("job_id,project,phase,cluster,user,start,end,nodes,gpus\n"
            "j1,p,pretraining,ci,u,2024-03-01T00:00:00Z,2024-03-01T02:00:00Z,n1,1\n")
INTENSITY_CSV = "timestamp,zone,intensity_g_per_kwh\n2024-03-01T00:00:00Z,FR,50\n"


def figure(name: str, value: object) -> None:
    print(f"\n[figure] {name}: {value}")


def wattprint(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
              timeout: float = 60) -> tuple[subprocess.CompletedProcess[str], float]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WATTPRINT_")}
    t0 = time.monotonic()
    res = subprocess.run([*prefix, sys.executable, "-m", "pipeline.cli", *args], cwd=REPO, capture_output=True,
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
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("running as root without unshare(1): cannot take away root's override of permissions")
    prefix = (unshare, "--user", "--map-user=65534", "--map-group=65534")
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces unavailable here: {probe.stderr.strip()}")
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
