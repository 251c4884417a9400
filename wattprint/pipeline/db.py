"""Open the DuckDB file, apply numbered migrations, run named SQL files with bound parameters."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from .errors import DatabaseLocked, DatabaseWriteError, InputError

DEFAULT_DB = "wattprint.duckdb"
SQLITE_MAGIC = b"SQLite format 3\0"
DUCKDB_MAGIC = b"DUCK"          # bytes 8-11 of every DuckDB file (after an 8-byte checksum)
_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


MEMORY_LIMIT_ENV = "WATTPRINT_MEMORY_LIMIT"
# DuckDB's own default is 80 % of RAM, and its buffer pool keeps what a build read up to it: a 10,240-GPU month built
# in 5.2 GB with it and in 3.1 GB, as fast and with the same results, at 3 GiB (docs/benchmarks.md); past the limit
# DuckDB spills to <db>.tmp instead of growing
DEFAULT_MEMORY_LIMIT = 3 * 2**30
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def size_bytes(text: str) -> int | None:
    """'3GB', '8 GiB', '512MiB', '1073741824' as bytes; None if it is not a size."""
    m = _SIZE.match(text)
    return None if m is None else int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def _memory_limit(con: duckdb.DuckDBPyConnection) -> None:
    """DuckDB's memory limit: $WATTPRINT_MEMORY_LIMIT, else 3 GiB or DuckDB's default (80 % of RAM) if lower."""
    text = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if text:
        limit = size_bytes(text)
        if not limit:
            raise InputError(MEMORY_LIMIT_ENV, f"{text!r} is not a memory size", "e.g. 3GiB, 8GB or 512MiB")
    else:
        (current,) = con.execute("SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'").fetchall()[0]
        limit = min(DEFAULT_MEMORY_LIMIT, size_bytes(current.replace(" ", "")) or DEFAULT_MEMORY_LIMIT)
    con.execute(f"SET memory_limit = '{int(limit)}B'")


def default_path() -> str:
    return os.environ.get("WATTPRINT_DB") or DEFAULT_DB


def duckdb_config() -> dict[str, Any]:
    """Settings for every DuckDB connection wattprint opens (scripts and benchmarks included).

    DuckDB otherwise installs and loads extensions on its own: opening a file with an SQLite header made it
    download `sqlite_scanner` over plain HTTP and run it. wattprint only needs the statically linked ones
    (core functions, ICU, JSON, Parquet), so nothing is ever fetched or loaded from disk.
    """
    return {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
            "allow_community_extensions": False}


def connect(path: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) and migrate the database; a second writer gets DatabaseLocked."""
    target = str(path) if path is not None else default_path()
    if target != ":memory:":
        parent = Path(target).resolve().parent
        if not parent.is_dir():
            raise InputError("--db", f"directory {parent} does not exist", "create it or pass another --db path")
        _check_file(target, read_only)
    try:
        con = duckdb.connect(target, read_only=read_only, config=duckdb_config())
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            pid = re.search(r"PID (\d+)", text)
            who = f"PID {pid.group(1)}" if pid else "another process"
            raise DatabaseLocked(
                target, f"database is locked by {who}", "wait for it to finish, or stop it, then re-run"
            ) from None
        raise InputError(
            target, f"cannot open the database: {text.splitlines()[0]}", "check --db / WATTPRINT_DB"
        ) from None
    _utc(con)
    try:
        _memory_limit(con)
    except BaseException:
        con.close()
        raise
    if not read_only:
        migrate(con)
    return con


def _check_file(target: str, read_only: bool) -> None:
    """InputError, naming the file, for a path DuckDB should not be handed.

    A FIFO would block the open forever, and anything but a DuckDB file ends in a multi-line DuckDB error;
    a writer also needs the directory: DuckDB creates `<file>.wal` next to the file on the first commit, and
    without this check a read-only directory only shows up then, as a traceback, after the import's work.
    """
    hint = "pass the path of a wattprint DuckDB file with --db (or WATTPRINT_DB)"
    head = b""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer. Links are followed: --db is the operator's path.
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = -1                                    # a new database (a reader gets DuckDB's own error)
    except IsADirectoryError:
        raise InputError(target, "is a directory, not a DuckDB database file", hint) from None
    except OSError as exc:
        raise InputError(target, f"cannot open the database ({exc.strerror})",
                         "check the file's permissions, or pass another --db") from None
    if fd >= 0:
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise InputError(target, "is a directory, not a DuckDB database file", hint)
            if not stat.S_ISREG(st.st_mode):
                raise InputError(target, "is not a regular file (a FIFO, socket or device)", hint)
            head = os.read(fd, 16)
        except OSError as exc:
            raise InputError(target, f"cannot read the database ({exc.strerror})", hint) from None
        finally:
            os.close(fd)
        if not head:
            raise InputError(target, "is empty, not a DuckDB database",
                             "delete the empty file to start a new database there, or pass another --db")
        if head.startswith(SQLITE_MAGIC):
            raise InputError(target, "is an SQLite database, not a DuckDB one", hint)
        if head[8:12] != DUCKDB_MAGIC:
            raise InputError(target, "is not a DuckDB database file (no DuckDB header)", hint)
    if read_only:
        return
    directory = os.path.dirname(os.path.abspath(target))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(target, f"directory {directory} is not writable, and DuckDB writes its journal "
                         f"{os.path.basename(target)}.wal there", "make the directory writable by this user, or "
                         "copy the database to a writable directory and pass that path with --db")
    if fd >= 0 and not os.access(target, os.W_OK):
        raise InputError(target, "the database file is not writable", "make it writable by this user, or copy it "
                         "to a writable directory and pass that path with --db")


def _utc(con: duckdb.DuckDBPyConnection) -> None:
    """All SQL time arithmetic in UTC. Without the ICU extension DuckDB only knows UTC anyway;
    with it, the session zone would default to the machine's local zone, so pin it."""
    try:
        con.execute("SET TimeZone = 'UTC'")
    except duckdb.Error:
        (zone,) = con.execute("SELECT current_setting('TimeZone')").fetchall()[0]
        if zone not in ("UTC", "Etc/UTC"):
            raise


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every shipped migration, in order."""
    out = []
    for entry in resources.files("wattprint.pipeline.migrations").iterdir():
        m = _MIGRATION.match(entry.name)
        if m:
            out.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)


def migrate(con: duckdb.DuckDBPyConnection) -> list[int]:
    """Apply the migrations not yet recorded, each in its own transaction. Forward only."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    done = {int(r[0]) for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
    shipped = migrations()
    newest = max((v for v, _, _ in shipped), default=0)
    if done and max(done) > newest:
        raise InputError(
            "database", f"schema version {max(done)} is newer than this wattprint knows ({newest})",
            "upgrade wattprint",
        )
    applied = []
    for version, name, sql in shipped:
        if version in done:
            continue
        with transaction(con):
            con.execute(sql)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
        applied.append(version)
    return applied


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    try:
        con.execute("COMMIT")
    except duckdb.Error as exc:
        # the commit writes the journal: a full disk, or a directory made read-only since connect. DuckDB has
        # already dropped the transaction, so what was committed before it is all there is.
        raise DatabaseWriteError(_path(con), f"cannot write the database: {str(exc).splitlines()[0]}",
                                 "nothing of this step was stored (earlier commits are kept); free space or fix "
                                 "the directory's permissions, then re-run") from None


def _path(con: duckdb.DuckDBPyConnection) -> str:
    try:
        row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    except duckdb.Error:
        row = None
    return str(row[0]) if row and row[0] else "database"


def tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The names of the database's own (not temporary) tables."""
    return {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' AND NOT temporary").fetchall()}


@cache
def sql_text(name: str) -> str:
    return resources.files("wattprint.pipeline.sql").joinpath(f"{name}.sql").read_text(encoding="utf-8")


def run_sql(
    con: duckdb.DuckDBPyConnection, name: str, params: Sequence[Any] | Mapping[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Run wattprint/pipeline/sql/<name>.sql (one statement) with bound parameters."""
    return con.execute(sql_text(name), params) if params is not None else con.execute(sql_text(name))
