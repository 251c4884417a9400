"""What each `wattprint` verb does, once flags are parsed. Parsing happens before the database is
opened for writing, so a bad file never touches stored data; each import and the rebuild of the
results commit in one transaction."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb

from . import db
from .errors import InputError
from .model import BuildSummary, rebuild
from .records import IntensityPoint, JobRecord
from .settings import Settings
from .timeutil import iso, parse_instant

if TYPE_CHECKING:
    from .promapi import PromClient


def say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, flush=True)


def _window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    start = parse_instant(args.start, "--start")
    end = parse_instant(args.end, "--end")
    if end <= start:
        raise InputError("--end", f"{iso(end)} is not after --start {iso(start)}", "swap them or widen the window")
    return start, end


def _summary(args: argparse.Namespace, s: BuildSummary, con: duckdb.DuckDBPyConnection) -> None:
    say(args, f"results: {s.fct_rows} (job, GPU, hour) rows, {s.energy_j / 3.6e6:.6f} kWh, "
              f"{s.emissions_g:.3f} gCO2eq; {s.intervals} energy intervals, {s.gaps} gaps")
    if s.energy_j > 0:
        # data quality: how much of the GPU energy each rule measured, attributed and priced
        for column in ("energy_quality", "attribution", "intensity_quality"):
            rows = con.execute(
                f"SELECT {column}, sum(energy_j) FROM fct_job_gpu_hour GROUP BY 1 ORDER BY 2 DESC"  # noqa: S608
            ).fetchall()
            say(args, f"  {column}: " + ", ".join(f"{k} {100 * e / s.energy_j:.1f} %" for k, e in rows))
    if s.cpu_rows or s.cpu_seconds:
        say(args, f"host CPU (RAPL): {s.cpu_rows} (job, socket, domain, hour) rows, "
                  f"{s.cpu_energy_j / 3.6e6:.6f} kWh, {s.cpu_emissions_g:.3f} gCO2eq; "
                  f"{s.cpu_seconds / 3600:.3f} CPU core-hours of jobs")
    unpriced = con.execute(
        "SELECT cluster, coalesce(zone, '(none)'), sum(energy_j) FROM ("
        " SELECT cluster, zone, energy_j, intensity_quality FROM fct_job_gpu_hour UNION ALL"
        " SELECT cluster, zone, energy_j, intensity_quality FROM fct_job_cpu_hour)"
        " WHERE intensity_quality = 'world_default' GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    for cluster, zone, e in unpriced:
        print(f"wattprint: warning: cluster {cluster} (zone {zone}): {e / 3.6e6:.3f} kWh priced at the world average"
              " (no hourly data, no shipped annual value for the zone); set clusters.<name>.zone in the config"
              " or import intensity for it", file=sys.stderr)


def _prom_client(args: argparse.Namespace) -> PromClient:
    from .promapi import PromClient, PromConfig

    config = PromConfig.from_sources(
        args.prometheus, token_file=args.prometheus_token_file, tenant=args.prometheus_tenant,
        ca_file=args.prometheus_ca_file, user=args.prometheus_user, password_file=args.prometheus_password_file,
        timeout_s=args.timeout, retries=args.retries,
    )
    return PromClient(config)


def _matchers(args: argparse.Namespace) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in args.match:
        key, sep, value = m.partition("=")
        if not sep or not key:
            raise InputError("--match", f"{m!r} is not LABEL=VALUE", "e.g. --match cluster=jean-zay")
        out[key] = value
    return out


def ingest(args: argparse.Namespace, settings: Settings) -> int:
    from .ingest import ingest as run_ingest
    from .promapi import redact_url

    start, end = _window(args)
    step = args.step if args.step is not None else settings.step_s
    if step <= 0:
        raise InputError("--step", f"{step} is not a positive number of seconds", "e.g. --step 60")
    matchers = _matchers(args)
    queries = settings.queries(args.power_metric)
    client = _prom_client(args)       # credentials and CA are checked before the database is touched
    con = db.connect(args.db)
    try:
        with client:
            stats = run_ingest(con, client, queries, start, end, step, matchers=matchers,
                               endpoint=redact_url(args.prometheus),
                               progress=None if args.quiet else lambda m: print(f"  {m}", file=sys.stderr))
        say(args, f"ingested {stats.samples} samples from {stats.series} series ({stats.new_series} new) in "
                  f"{stats.chunks} chunks, {iso(start)} .. {iso(end)} at {step} s")
        for kind, n in sorted(stats.per_kind.items()):
            say(args, f"  {kind}: {n} samples")
        if stats.non_finite_dropped:
            say(args, f"  dropped {stats.non_finite_dropped} NaN/Inf samples")
        if stats.samples == 0:
            say(args, "  no energy series found: check --prometheus, --match and the metric names in the config")
        with db.transaction(con):
            _summary(args, rebuild(con, settings.build_settings()), con)
    finally:
        con.close()
    return 0


def _store_jobs(args: argparse.Namespace, settings: Settings, records: list[JobRecord], what: str) -> int:
    from .store import write_jobs  # pyarrow: not loaded for verbs that do not write

    con = db.connect(args.db)
    try:
        with db.transaction(con):
            res = write_jobs(con, records)
            summary = rebuild(con, settings.build_settings())
        say(args, f"imported {res.written} jobs from {what} ({res.replaced} replaced)")
        _summary(args, summary, con)
    finally:
        con.close()
    return 0


def jobs_import(args: argparse.Namespace, settings: Settings) -> int:
    from .sources.jobs import read_jobs

    result = read_jobs(args.path, args.format, default_cluster=args.cluster or settings.default_cluster,
                       timezone=args.timezone, rules=settings.rules(args.rules))
    for reason, n in sorted(result.skipped.items()):
        say(args, f"  skipped {n}: {reason}")
    for w in result.warnings:
        print(f"wattprint jobs import: warning: {w}", file=sys.stderr)
    return _store_jobs(args, settings, list(result.records), args.path)


def jobs_sync_kubernetes(args: argparse.Namespace, settings: Settings) -> int:
    from .sources.jobs.kubernetes import sync_from_prometheus

    start, end = _window(args)
    with _prom_client(args) as client:
        result = sync_from_prometheus(client, start, end, cluster=args.cluster, step_s=args.step,
                                      project_label=args.project_label, phase_label=args.phase_label,
                                      rules=settings.rules(args.rules))
    for reason, n in sorted(result.skipped.items()):
        say(args, f"  skipped {n}: {reason}")
    return _store_jobs(args, settings, list(result.records), f"kube-state-metrics at {args.prometheus}")


def _store_intensity(args: argparse.Namespace, settings: Settings, points: list[IntensityPoint], what: str) -> int:
    from .store import write_intensity

    con = db.connect(args.db)
    try:
        with db.transaction(con):
            res = write_intensity(con, points)
            summary = rebuild(con, settings.build_settings())
        zones = ", ".join(sorted({p.zone for p in points}))
        say(args, f"imported {len(points)} intensity points from {what} as {res.written} zone-hours "
                  f"({res.replaced} replaced) for {zones}")
        if res.points_replaced or res.points_trimmed:
            # several imports combine by coverage: a zone-hour is recomputed from every stored point in it
            say(args, f"  stored points it overlaps: {res.points_replaced} replaced, {res.points_trimmed} trimmed to "
                      "the time it does not cover; each zone-hour is recomputed from all the points it holds")
        _summary(args, summary, con)
    finally:
        con.close()
    return 0


def intensity_import(args: argparse.Namespace, settings: Settings) -> int:
    from .sources.intensity import check_points, parse

    # the config's basis picks a column where a file has both (Electricity Maps CSV); elsewhere the file decides
    basis = args.basis or (settings.basis if args.format == "electricitymaps-csv" else None)
    result = parse(args.path, args.format, zone=args.zone, basis=basis)
    for w in result.warnings:
        print(f"wattprint intensity import: warning: {w}", file=sys.stderr)
    points = check_points(result.points)
    return _store_intensity(args, settings, points, args.path)


def intensity_fetch(args: argparse.Namespace, settings: Settings) -> int:
    from .sources.intensity import check_points, fetch

    start, end = _window(args)
    # One flag, the source's one credential file (as serve-intensity reads it): the Electricity Maps token,
    # or the WattTime password (the user from $WATTTIME_USERNAME).
    if args.token_file and args.source not in ("electricitymaps", "watttime"):
        raise InputError("--token-file", f"{args.source} takes no credential", "drop --token-file")
    credential = {"password_file" if args.source == "watttime" else "token_file": args.token_file}
    points = check_points(fetch(args.source, args.zone, start, end, base_url=args.base_url, **credential))
    for w in sorted({n for p in points for n in p.notes}):
        print(f"wattprint intensity fetch: warning: {w}", file=sys.stderr)
    return _store_intensity(args, settings, points, f"{args.source} API")


def report(args: argparse.Namespace, settings: Settings) -> int:
    from .report.run import ReportRequest
    from .report.run import run as run_report

    return run_report(ReportRequest(
        month=args.month, start=args.start, end=args.end, project=args.project, phases=tuple(args.phase),
        format=args.format, out=args.out, layers=args.layers, idle_policy=args.idle_policy,
        estimates=args.estimates, top_jobs=args.top_jobs, db=args.db, quiet=args.quiet), settings)


def build(args: argparse.Namespace, settings: Settings) -> int:
    con = db.connect(args.db)
    try:
        with db.transaction(con):
            _summary(args, rebuild(con, settings.build_settings()), con)
    finally:
        con.close()
    return 0
