"""Retention: what `wattprint compact` saves, and what it costs, on a history of samples.

A fleet of `--gpus` GPUs (dcgm-style energy counters, 8 GPUs a node, one sample a minute) over `--months` whole UTC
months, with jobs keeping the GPUs busy most of the time, stored as samples the way `wattprint ingest` stores them,
then built (`model.build`). Measured in one run, on this machine:

  full build before   model.build over every month (what `wattprint build` or an ingest pays)
  compact             retention.compact closing all months but the last `--keep-months` (its own transaction and
                      CHECKPOINT)
  full build after    model.build again: it makes only the open months
  sizes               the DuckDB file after the first build, after compact and the second build (DuckDB keeps the
                      freed blocks for reuse), and after retention.rewrite (`wattprint compact --rewrite`: the
                      database copied into a new file put in its place)

Checked in the run: every result row of every month is the same after compaction and after the second build.

    .venv/bin/python benchmarks/bench_retention.py [--gpus 128 --months 6 --keep-months 1] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from wattprint.pipeline import db  # noqa: E402
from wattprint.pipeline.model import RESULT_TABLES, BuildSettings, ClusterFacts, build  # noqa: E402
from wattprint.pipeline.retention import compact, rewrite  # noqa: E402

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _month(i: int) -> datetime:
    return T0.replace(year=T0.year + (T0.month - 1 + i) // 12, month=(T0.month - 1 + i) % 12 + 1)


def generate(path: Path, gpus: int, months: int) -> int:
    con = db.connect(path)
    minutes = int((_month(months) - T0).total_seconds() // 60)
    con.execute(
        "INSERT INTO series (series_id, source, kind, query, fingerprint, cluster, hostname, gpu, uuid, labels)"
        " SELECT g + 1, 'dcgm', 'gpu_energy', 'qdcgm', 'f' || g, 'c1', printf('n%03d', g // 8), (g % 8)::VARCHAR,"
        " printf('GPU-%05d', g), '{}' FROM range(?) t(g)", [gpus])
    # an H100-like draw: 120-700 W, busier in working hours; the counter in joules (dcgm's mJ already divided)
    con.execute(
        "INSERT INTO samples SELECT g + 1, ?::TIMESTAMPTZ + to_minutes(m),"
        " sum(60.0 * (120 + 580 * ((hash(g, m // 30) % 1000) / 1000.0))) OVER (PARTITION BY g ORDER BY m)"
        " FROM range(?) a(g), range(?) b(m)", [T0, gpus, minutes])
    con.execute("INSERT INTO ingest_coverage (kind, query, start_ts, end_ts, step_s, series, samples, endpoint)"
                " VALUES ('gpu_energy', 'qdcgm', ?, ?, 60, ?, 0, 'bench')", [T0, _month(months), gpus])
    # whole-node jobs of 2-30 hours back to back with 0-3 hour pauses on each node
    nodes = (gpus + 7) // 8
    con.execute(
        "CREATE TEMP TABLE j AS SELECT n, k, len_h,"
        " (sum(len_h + pause_h) OVER (PARTITION BY n ORDER BY k) - len_h)::BIGINT AS start_h"
        " FROM (SELECT n, k, (2 + hash(n, k) % 29)::BIGINT AS len_h, (hash(k, n) % 4)::BIGINT AS pause_h"
        " FROM range(?) a(n), range(?) b(k))", [nodes, minutes // 60 // 2 + 1])
    con.execute("DELETE FROM j WHERE start_h + len_h > ?", [minutes // 60])
    con.execute(
        "INSERT INTO jobs (cluster, job_id, project, phase, user_name, name, account, start_ts, end_ts, source, origin)"
        " SELECT 'c1', printf('%d-%d', n, k), 'p' || (hash(n * 7 + k) % 8), 'pretraining', 'u', NULL, NULL,"
        " ?::TIMESTAMPTZ + to_hours(start_h), ?::TIMESTAMPTZ + to_hours(start_h + len_h), 'bench', 'bench' FROM j",
        [T0, T0])
    con.execute("INSERT INTO job_nodes (cluster, job_id, node, gpus) SELECT 'c1', printf('%d-%d', n, k),"
                " printf('n%03d', n), 8 FROM j")
    (n,) = con.execute("SELECT count(*) FROM samples").fetchall()[0]
    con.execute("CHECKPOINT")
    con.close()
    return int(n)


def _results(path: Path) -> dict[str, list[tuple]]:
    con = db.connect(path, read_only=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in RESULT_TABLES}  # noqa: S608
    finally:
        con.close()


def _timed_build(path: Path, s: BuildSettings) -> float:
    con = db.connect(path)
    try:
        t = time.perf_counter()
        build(con, s)
        return time.perf_counter() - t
    finally:
        con.close()


def _mb(path: Path) -> float:
    return path.stat().st_size / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, default=128)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--keep-months", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="16 GPUs x 2 months (a smoke test)")
    ap.add_argument("--markdown-out", type=Path)
    args = ap.parse_args(argv)
    if args.quick:
        args.gpus, args.months, args.keep_months = 16, 2, 1
    s = BuildSettings(clusters=(ClusterFacts("c1", zone="FR", nodes=("n*",)),))
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        path = Path(tmp) / "w.duckdb"
        t = time.perf_counter()
        samples = generate(path, args.gpus, args.months)
        gen_s = time.perf_counter() - t
        built_before = _timed_build(path, s)
        size_built = _mb(path)
        before = _results(path)
        # the retention cut falls in the first kept month: every month before it closes
        now = _month(args.months - args.keep_months) + timedelta(days=10)
        con = db.connect(path)
        try:
            t = time.perf_counter()
            res = compact(con, s, 10, now)
            compact_s = time.perf_counter() - t
        finally:
            con.close()
        size_compacted = _mb(path)
        if _results(path) != before:
            raise SystemExit("FAILED: the results changed with compaction")
        built_after = _timed_build(path, s)
        if _results(path) != before:
            raise SystemExit("FAILED: the results changed with the build after compaction")
        size_rebuilt = _mb(path)
        t = time.perf_counter()
        rewrite(str(path))
        rewrite_s = time.perf_counter() - t
        size_copy = _mb(path)
        if _results(path) != before:
            raise SystemExit("FAILED: the results changed with the rewrite")
    lines = [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores): {args.gpus} GPUs,"
        f" {args.months} months at 60 s = {samples:,} samples (generated in {gen_s:.1f} s); compact closes"
        f" {len(res.months)} months ({res.months[0]} .. {res.months[-1]}), keeps {args.keep_months}.",
        "",
        "| | value | ratio |",
        "|---|---:|---:|",
        f"| full build before compaction | {built_before:.2f} s | 1 |",
        f"| compact (one transaction, CHECKPOINT) | {compact_s:.2f} s | {compact_s / built_before:.2f}× the build |",
        f"| full build after compaction (open months only) | {built_after:.2f} s |"
        f" {built_after / built_before:.2f}× |",
        f"| samples deleted / kept | {res.samples_deleted:,} / {res.samples_kept:,} |"
        f" {res.samples_kept / samples:.3f} kept |",
        f"| DuckDB file after the build | {size_built:.1f} MB | 1 |",
        f"| DuckDB file after compact | {size_compacted:.1f} MB | {size_compacted / size_built:.2f}× |",
        f"| DuckDB file after the build after compact | {size_rebuilt:.1f} MB | {size_rebuilt / size_built:.2f}× |",
        f"| DuckDB file after `--rewrite` (a copy put in its place, {rewrite_s:.2f} s) | {size_copy:.1f} MB |"
        f" {size_copy / size_built:.2f}× |",
        "",
        "Every result row of every month was the same after compaction, the second build and the rewrite (checked).",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown_out:
        args.markdown_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
