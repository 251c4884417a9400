"""Open the DuckDB file, apply numbered migrations, run named SQL files with bound parameters."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb

from .errors import DatabaseLocked, InputError

DEFAULT_DB = "wattprint.duckdb"
_MIGRATION = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def default_path() -> str:
    return os.environ.get("WATTPRINT_DB") or DEFAULT_DB


def connect(path: str | os.PathLike[str] | None = None, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) and migrate the database; a second writer gets DatabaseLocked."""
    target = str(path) if path is not None else default_path()
    if target != ":memory:":
        parent = Path(target).resolve().parent
        if not parent.is_dir():
            raise InputError("--db", f"directory {parent} does not exist", "create it or pass another --db path")
    try:
        con = duckdb.connect(target, read_only=read_only)
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
    if not read_only:
        migrate(con)
    return con


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
    for entry in resources.files("pipeline.migrations").iterdir():
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
    else:
        con.execute("COMMIT")


@cache
def sql_text(name: str) -> str:
    return resources.files("pipeline.sql").joinpath(f"{name}.sql").read_text(encoding="utf-8")


def run_sql(
    con: duckdb.DuckDBPyConnection, name: str, params: Sequence[Any] | Mapping[str, Any] | None = None
) -> duckdb.DuckDBPyConnection:
    """Run pipeline/sql/<name>.sql (one statement) with bound parameters."""
    return con.execute(sql_text(name), params) if params is not None else con.execute(sql_text(name))
