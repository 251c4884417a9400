"""`wattprint compact`: close the UTC months older than the retention and delete their samples.

The samples are the bulk of the database (one row per series and scrape step) and the energy intervals built from
them as many again. Once a month is closed, the ledger fixes and intensity corrections for it are in and its
numbers should stop moving (an ESG team closes its books a month at a time), so its minute-resolution telemetry has
done its work. Compaction keeps, for every closed month:

- the result tables' rows (fct_*: every figure a report prints comes from them), never rebuilt again;
- what the reports read besides them: the GPUs' telemetry gaps, the counters' stepbacks and the hosts' RAPL
  readability (closed_gpu_gaps, closed_gpu_stepbacks, closed_node_rapl_hour);
- the stored inputs other than samples (series, jobs, intensity) and the coverage of what was ingested.

It deletes the month's samples except what the first open month's results are made from: the samples from a few
hours before it (the hours int_hourly_pieces reads around it, model.evaluated_hours) and each series' last sample before
those, so every interval that reaches into the open months keeps both its ends. The open months' results are the
same, bit for bit, before and after (tests/test_retention.py), and later imports rebuild only open hours.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from .db import duckdb_config, sql_text, transaction
from .errors import DatabaseLocked
from .model import INTERVALS, MACROS, BuildSettings, built_with, closed_before_h, evaluated_hours, rebuild, run_models
from .timeutil import hour_start, month_start_hour, month_starts, next_month_hour


@dataclass(frozen=True)
class CompactResult:
    months: tuple[str, ...]       # the months closed now, "YYYY-MM"
    closed_before: datetime | None  # the first instant after every closed month (None: none closed)
    samples_deleted: int
    samples_kept: int


def compact(con: duckdb.DuckDBPyConnection, s: BuildSettings, keep_samples_days: int, now: datetime) -> CompactResult:
    """Close every UTC month that ended more than `keep_samples_days` before `now`, in one transaction."""
    cut_h = int((now - timedelta(days=keep_samples_days)).timestamp()) // 3600
    horizon = month_start_hour(cut_h)         # months wholly before the one the retention cut falls in
    with transaction(con):
        if not built_with(con, s):
            rebuild(con, s)                   # the results a closed month keeps are the current settings' ones
        before = closed_before_h(con)
        first, last = _data_hours(con)
        if last is not None:     # close the months that hold samples, not the empty ones up to the cut
            horizon = min(horizon, next_month_hour(last))
        if first is None or horizon <= max(first, before if before is not None else first):
            return CompactResult((), None if before is None else hour_start(before), 0, _count(con))
        lo = hour_start(before) if before is not None else datetime.min.replace(tzinfo=UTC)
        hi = hour_start(horizon)
        for name, table in (("close_gpu_gaps", "closed_gpu_gaps"), ("close_gpu_stepbacks", "closed_gpu_stepbacks"),
                            ("close_node_rapl_hour", "closed_node_rapl_hour")):
            con.execute(f"INSERT INTO {table} {sql_text(name)}", {"lo": lo, "hi": hi})  # noqa: S608 - our names
        keep_from = hour_start(evaluated_hours(con, (horizon, horizon + 1))[0] - 1)
        deleted = _delete_samples(con, keep_from)
        # the coverage says which samples are stored: the first-sample rule must not read the gone ones as absent
        con.execute("DELETE FROM ingest_coverage WHERE end_ts <= ?", [keep_from])
        con.execute("UPDATE ingest_coverage SET start_ts = ? WHERE start_ts < ?", [keep_from, keep_from])
        months = month_starts(first if before is None else before, horizon)
        (sha,) = con.execute("SELECT settings_sha256 FROM build_info ORDER BY built_at DESC LIMIT 1").fetchall()[0]
        con.executemany(
            "INSERT INTO closed_months (month_ts, closed_at, keep_samples_days, samples_deleted, settings_sha256)"
            " VALUES (?, ?, ?, ?, ?)",
            [[hour_start(m), now, keep_samples_days, deleted if i == len(months) - 1 else 0, sha]
             for i, m in enumerate(months)])
        run_models(con, MACROS + INTERVALS, s.params())   # the intervals of what is left; the results stand
        kept = _count(con)
    con.execute("CHECKPOINT")                 # free the deleted blocks for reuse now
    return CompactResult(tuple(hour_start(m).strftime("%Y-%m") for m in months), hi, deleted, kept)


def _data_hours(con: duckdb.DuckDBPyConnection) -> tuple[int | None, int | None]:
    """The hours of the first and the last stored sample."""
    lo, hi = con.execute("SELECT min(ts), max(ts) FROM samples").fetchall()[0]
    return (None, None) if lo is None else (int(lo.timestamp()) // 3600, int(hi.timestamp()) // 3600)


def _delete_samples(con: duckdb.DuckDBPyConnection, keep_from: datetime) -> int:
    """Samples before `keep_from`, except each series' last one (so the interval reaching past it keeps its start)."""
    (n,) = con.execute(
        "DELETE FROM samples WHERE ts < ? AND (series_id, ts) NOT IN"
        " (SELECT (series_id, max(ts)) FROM samples WHERE ts < ? GROUP BY series_id)",
        [keep_from, keep_from]).fetchall()[0]
    return int(n)


def _count(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM samples").fetchall()[0][0])


def rewrite(target: str) -> tuple[int, int]:
    """Copy the database into a new file and put it in place of the old one: DuckDB reuses the blocks a deletion
    frees but never gives them back, so only a copy makes the file smaller. Needs the disk space of the copy and
    no other process using the database. (size before, size after) in bytes."""
    path = Path(target)
    tmp = path.with_name(path.name + ".compact-tmp")
    before = path.stat().st_size
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(":memory:", config=duckdb_config())
    try:
        try:
            con.execute(f"ATTACH {_literal(str(path))} AS src (READ_ONLY)")
        except duckdb.IOException as exc:
            raise DatabaseLocked(target, f"cannot rewrite the database: {str(exc).splitlines()[0]}",
                                 "stop the processes using it, then run `wattprint compact --rewrite` again") from None
        con.execute(f"ATTACH {_literal(str(tmp))} AS dst")
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("DETACH dst")
        con.execute("DETACH src")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)                    # atomic: a reader sees the old file or the new one
    return before, path.stat().st_size


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

