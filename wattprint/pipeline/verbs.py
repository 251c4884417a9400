"""What each `wattprint` verb does: one typed function per verb, called with its request (the flags, as values:
verb_requests.py) and the cluster settings, by the CLI (wattprint/pipeline/cli/), by `wattprint run` (month.py)
and by tests.

Requests are checked before the database is opened for writing, so a bad file never touches stored data; each
import and the rebuild of the results commit in one transaction."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import duckdb

from . import db, dirty
from .errors import InputError
from .model import BuildSummary, closed_before_h, rebuild, rebuild_hours
from .records import IntensityPoint, JobRecord, intensity_signal
from .settings import Settings
from .timeutil import hour_start, iso, parse_instant
from .verb_requests import (
    BuildRequest,
    CompactRequest,
    IngestRequest,
    IntensityFetchRequest,
    IntensityImportRequest,
    JobsImportRequest,
    JobsSyncRequest,
    PromSource,
    ReportRequest,
)

if TYPE_CHECKING:
    from .promapi import PromClient


class _Loud(Protocol):
    @property
    def quiet(self) -> bool: ...


def say(request: _Loud, text: str) -> None:
    if not request.quiet:
        print(text, flush=True)


def _window(request: IngestRequest | JobsSyncRequest | IntensityFetchRequest) -> tuple[datetime, datetime]:
    start = parse_instant(request.start, "--start")
    end = parse_instant(request.end, "--end")
    if end <= start:
        raise InputError("--end", f"{iso(end)} is not after --start {iso(start)}", "swap them or widen the window")
    return start, end


def _summary(request: _Loud, s: BuildSummary, con: duckdb.DuckDBPyConnection) -> None:
    say(request, f"results: {s.fct_rows} (job, GPU, hour) rows, {s.energy_j / 3.6e6:.6f} kWh, "
                 f"{s.emissions_g:.3f} gCO2eq; {s.intervals} energy intervals, {s.gaps} gaps")
    if s.energy_j > 0:
        # data quality: how much of the GPU energy each rule measured, attributed and priced
        for column in ("energy_quality", "attribution", "intensity_quality"):
            rows = con.execute(
                f"SELECT {column}, sum(energy_j) FROM fct_job_gpu_hour GROUP BY 1 ORDER BY 2 DESC"  # noqa: S608
            ).fetchall()
            say(request, f"  {column}: " + ", ".join(f"{k} {100 * e / s.energy_j:.1f} %" for k, e in rows))
    if s.cpu_rows or s.cpu_seconds:
        say(request, f"host CPU (RAPL): {s.cpu_rows} (job, socket, domain, hour) rows, "
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


def _prom_client(source: PromSource) -> PromClient:
    from .promapi import PromClient, PromConfig

    config = PromConfig.from_sources(
        source.url, token_file=source.token_file, tenant=source.tenant, ca_file=source.ca_file, user=source.user,
        password_file=source.password_file, timeout_s=source.timeout_s, retries=source.retries,
    )
    return PromClient(config)


def matchers(match: tuple[str, ...]) -> dict[str, str]:
    """--match LABEL=VALUE flags as a dict; InputError names a malformed one."""
    out: dict[str, str] = {}
    for m in match:
        key, sep, value = m.partition("=")
        if not sep or not key:
            raise InputError("--match", f"{m!r} is not LABEL=VALUE", "e.g. --match cluster=jean-zay")
        out[key] = value
    if out:
        from .promapi import selector

        selector("", out)   # a label name PromQL refuses is bad input, found before the database is opened
    return out


def ingest(request: IngestRequest, settings: Settings) -> int:
    from .ingest import ingest as run_ingest
    from .promapi import redact_url

    start, end = _window(request)
    step = request.step if request.step is not None else settings.step_s
    if step <= 0:
        raise InputError("--step", f"{step} is not a positive number of seconds", "e.g. --step 60")
    selected = matchers(request.match)
    queries = settings.queries(request.power_metric)
    client = _prom_client(request.prometheus)       # credentials and CA are checked before the database is touched
    con = db.connect(request.db)
    try:
        _refuse_closed(con, start)
        with client:
            stats = run_ingest(con, client, queries, start, end, step, matchers=selected,
                               max_points_per_request=settings.config.ingest.max_points_per_request,
                               endpoint=redact_url(request.prometheus.url),
                               progress=None if request.quiet else lambda m: print(f"  {m}", file=sys.stderr))
        say(request, f"ingested {stats.samples} samples from {stats.series} series ({stats.new_series} new) in "
                     f"{stats.chunks} chunks, {iso(start)} .. {iso(end)} at {step} s")
        for kind, n in sorted(stats.per_kind.items()):
            say(request, f"  {kind}: {n} samples")
        if stats.non_finite_dropped:
            say(request, f"  dropped {stats.non_finite_dropped} NaN/Inf samples")
        if stats.samples == 0:
            say(request, "  no energy series found: check --prometheus, --match and the metric names in the config")
        with db.transaction(con):
            _summary(request, rebuild(con, settings.build_settings()), con)
    finally:
        con.close()
    return 0


def _store_jobs(request: JobsImportRequest | JobsSyncRequest, settings: Settings, records: list[JobRecord],
                what: str) -> int:
    from .store import write_jobs  # pyarrow: not loaded for verbs that do not write

    con = db.connect(request.db)
    keys = [(r.cluster, r.job_id) for r in records]
    try:
        with db.transaction(con):
            before = dirty.jobs(con, keys)         # the hours the jobs' old rows reach, and after: the new ones
            res = write_jobs(con, records)
            hours = dirty.union(before, dirty.jobs(con, keys))
            summary = rebuild_hours(con, settings.build_settings(), hours)
        say(request, f"imported {res.written} jobs from {what} ({res.replaced} replaced)")
        _closed_note(request, con, hours)
        _summary(request, summary, con)
    finally:
        con.close()
    return 0


def jobs_import(request: JobsImportRequest, settings: Settings) -> int:
    from .sources.jobs import read_jobs

    result = read_jobs(request.path, request.format, default_cluster=request.cluster or settings.default_cluster,
                       timezone=request.timezone, rules=settings.rules(request.rules))
    for reason, n in sorted(result.skipped.items()):
        say(request, f"  skipped {n}: {reason}")
    for w in result.warnings:
        print(f"wattprint jobs import: warning: {w}", file=sys.stderr)
    return _store_jobs(request, settings, list(result.records), request.path)


def jobs_sync_kubernetes(request: JobsSyncRequest, settings: Settings) -> int:
    from .sources.jobs.kubernetes import sync_from_prometheus

    start, end = _window(request)
    with _prom_client(request.prometheus) as client:
        result = sync_from_prometheus(client, start, end, cluster=request.cluster, step_s=request.step,
                                      project_label=request.project_label, phase_label=request.phase_label,
                                      rules=settings.rules(request.rules))
    for reason, n in sorted(result.skipped.items()):
        say(request, f"  skipped {n}: {reason}")
    return _store_jobs(request, settings, list(result.records), f"kube-state-metrics at {request.prometheus.url}")


def _store_intensity(request: IntensityImportRequest | IntensityFetchRequest, settings: Settings,
                     points: list[IntensityPoint], what: str) -> int:
    from .store import write_intensity

    con = db.connect(request.db)
    try:
        with db.transaction(con):
            res = write_intensity(con, points)
            bs = settings.build_settings()
            hours = dirty.intensity(points, bs.nearest_hour_bound_h)
            summary = rebuild_hours(con, bs, hours)
        zones = ", ".join(sorted({p.zone for p in points}))
        say(request, f"imported {len(points)} intensity points from {what} as {res.written} zone-hours "
                     f"({res.replaced} replaced) for {zones}")
        marginal = sum(1 for p in points if intensity_signal(p.basis) == "marginal")
        if marginal:
            # the two signals never meet: a marginal import leaves the average hours, and so every result, as they were
            say(request, f"  {marginal} of them marginal: stored as the marginal signal (marginal_hourly), beside the "
                         "average intensity; reports show it in their marginal section, never in the headline")
        if res.points_replaced or res.points_trimmed:
            # several imports combine by coverage: a zone-hour is recomputed from every stored point in it
            say(request, f"  stored points it overlaps: {res.points_replaced} replaced, {res.points_trimmed} "
                         "trimmed to the time it does not cover; each zone-hour is recomputed from all the points it "
                         "holds")
        _closed_note(request, con, hours)
        _summary(request, summary, con)
    finally:
        con.close()
    return 0


def intensity_import(request: IntensityImportRequest, settings: Settings) -> int:
    from .sources.intensity import check_points, parse

    # the config's basis picks a column where a file has both (Electricity Maps CSV); elsewhere the file decides
    basis = request.basis or (settings.basis if request.format == "electricitymaps-csv" else None)
    result = parse(request.path, request.format, zone=request.zone, basis=basis)
    for w in result.warnings:
        print(f"wattprint intensity import: warning: {w}", file=sys.stderr)
    points = check_points(result.points)
    return _store_intensity(request, settings, points, request.path)


def intensity_fetch(request: IntensityFetchRequest, settings: Settings) -> int:
    from .sources.intensity import check_points, fetch

    start, end = _window(request)
    # One flag, the source's one credential file (as serve-intensity reads it): the Electricity Maps token,
    # or the WattTime password (the user from $WATTTIME_USERNAME).
    if request.token_file and request.source not in ("electricitymaps", "watttime"):
        raise InputError("--token-file", f"{request.source} takes no credential", "drop --token-file")
    credential = {"password_file" if request.source == "watttime" else "token_file": request.token_file}
    points = check_points(fetch(request.source, request.zone, start, end, base_url=request.base_url, **credential))
    for w in sorted({n for p in points for n in p.notes}):
        print(f"wattprint intensity fetch: warning: {w}", file=sys.stderr)
    return _store_intensity(request, settings, points, f"{request.source} API")


def report(request: ReportRequest, settings: Settings) -> int:
    from .report.run import run

    return run(request, settings)


def _refuse_closed(con: duckdb.DuckDBPyConnection, start: datetime) -> None:
    closed = closed_before_h(con)
    if closed is not None and start.timestamp() < closed * 3600:
        first_open = iso(hour_start(closed))
        raise InputError("--start", f"{iso(start)} is in a closed month: `wattprint compact` deleted the samples "
                                    f"before {first_open} and kept those months' results as they were",
                         f"ingest from --start {first_open} on")


def _closed_note(request: _Loud, con: duckdb.DuckDBPyConnection, hours: dirty.Hours) -> None:
    """Say so when an import reaches into closed months: it is stored, but their results are final."""
    closed = closed_before_h(con)
    if closed is not None and hours is not None and hours[0] < closed:
        n = min(hours[1], closed) - hours[0]
        say(request, f"  {n} of the hours it touches are in closed months (before "
                     f"{iso(hour_start(closed))}): stored, but their results stay as "
                     "they were when the months were closed (`wattprint compact`)")


def check_keep_samples_days(days: int) -> None:
    """InputError naming --keep-samples-days unless it is a positive number of days (compact, and run up front)."""
    if days < 1:
        raise InputError("--keep-samples-days", f"{days} is not a positive number of days",
                         "e.g. --keep-samples-days 90 (a closed month's samples are deleted for good)")


def compact(request: CompactRequest, settings: Settings) -> int:
    from .retention import compact as run_compact

    check_keep_samples_days(request.keep_samples_days)
    con = db.connect(request.db)
    try:
        res = run_compact(con, settings.build_settings(), request.keep_samples_days,
                          request.now or datetime.now(UTC))
    finally:
        con.close()
    if not res.months or res.closed_before is None:
        say(request, f"nothing to close: no month of samples ended over {request.keep_samples_days} days ago"
                     + (f" (closed before {iso(res.closed_before)})" if res.closed_before else ""))
    else:
        say(request, f"closed {len(res.months)} month(s), {res.months[0]} .. {res.months[-1]}: deleted "
                     f"{res.samples_deleted:,} samples, {res.samples_kept:,} kept; their results, gaps, stepbacks "
                     f"and RAPL hours are kept and final; samples from {iso(res.closed_before)} on are kept "
                     "(with the few hours before it that the first open month's results need)")
    if request.rewrite:         # also after an earlier compaction: the space it freed is given back now
        from .retention import rewrite

        before, after = rewrite(request.db or db.default_path())
        say(request, f"rewrote the database: {before / 1e6:,.1f} MB -> {after / 1e6:,.1f} MB")
    return 0


def build(request: BuildRequest, settings: Settings) -> int:
    con = db.connect(request.db)
    try:
        with db.transaction(con):
            _summary(request, rebuild(con, settings.build_settings()), con)
    finally:
        con.close()
    return 0
