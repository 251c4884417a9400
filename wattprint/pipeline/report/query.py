"""The report's SQL: each statement is wattprint/pipeline/sql/rpt_<name>.sql (a one-line lookup may stay inline,
`inline`), and its result rows are read by column name (every column a statement returns is named,
`SELECT ... AS name`), never by position."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb

from ..db import run_sql


def rows(con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of sql/<name>.sql, each a dict by column name."""
    return _named(run_sql(con, name, params), f"{name}.sql")


def inline(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows of a one-line lookup, each a dict by column name."""
    return _named(con.execute(sql, params) if params is not None else con.execute(sql), sql)


def _named(cur: duckdb.DuckDBPyConnection, what: str) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or ()]
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: two result columns named alike: {names}")
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def one(con: duckdb.DuckDBPyConnection, name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The single row of sql/<name>.sql (an aggregate without GROUP BY)."""
    (row,) = rows(con, name, params)
    return row
