"""`wattprint serve-intensity`: a small Prometheus exporter of the grid intensity in force now, per zone.

One refresh thread per zone asks the configured source (`sources.py`) every --refresh-interval and keeps the
last good value; a failure (timeout, connection, HTTP error, garbage, no data) is counted by reason and logged
once per change of reason, never raised. Scrapes only read that state: they never wait on upstream. What a
scrape serves is decided at scrape time from the monotonic clock, so a value goes stale at --max-age even while
its refresh thread hangs: then the zone's shipped annual value (else the world value) is served with
`wattprint_grid_intensity_fallback` 1. With --db, a reader thread lists the ledger's running jobs read-only.

The metric contract is docs/operations.md ("Metric contract of `wattprint serve-intensity`"); rules and
dashboards are written against those names.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from wattprint.common.logs import LOG_FORMATS, LOG_LEVELS, kv

from .. import __version__
from ..config import Config
from ..errors import DatabaseLocked, InputError, WattprintError
from ..verb_requests import DEFAULT_MAX_AGE_S, DEFAULT_REFRESH_S, DEFAULT_TIMEOUT_S, ServeRequest
from ..zones import canonical_zone
from .sources import API_SOURCES, REASONS, SOURCES, WORLD, LiveValue, RecordingSession, Source, annual, classify

log = logging.getLogger("wattprint.serve_intensity")

LEDGER_REASONS = ("locked", "missing", "error")



# -- state ----------------------------------------------------------------------------------------------

@dataclass
class ZoneState:
    zone: str
    unserved: str | None = None            # why the source is never asked for this zone (annual value served)
    last_good: LiveValue | None = None
    last_success_mono: float | None = None
    last_success_wall: float = 0.0
    refreshes: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    failing: str | None = None             # reason of the current run of failures, for one log line per change
    failures_in_row: int = 0
    stale_logged: bool = False
    first_done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Served:
    value: LiveValue
    fallback: bool
    age_s: float
    last_success_wall: float
    refreshes: int
    errors: dict[str, int]


class Refresher:
    """Per-zone refresh threads and the state scrapes read."""

    def __init__(self, source: Source, zones: Sequence[str], refresh_s: float, max_age_s: float, *,
                 clock: Callable[[], float] = time.monotonic, wallclock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.refresh_s = refresh_s
        self.max_age_s = max_age_s
        self.clock = clock
        self.wallclock = wallclock
        self.started = clock()
        self.states = {z: ZoneState(z, unserved=source.unserved(z)) for z in zones}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # one attempt; never raises
    def refresh(self, zone: str, session: RecordingSession | None = None) -> None:
        st = self.states[zone]
        now = datetime.fromtimestamp(self.wallclock(), UTC)
        if session is not None:
            session.outcome = ""        # the reason of a failure is read from this attempt's requests only
        try:
            value = self.source.current(zone, now, session)
        except Exception as exc:  # every failure is counted and logged, none stops the thread
            err = classify(exc, session)
            with self._lock:
                st.refreshes += 1
                st.errors[err.reason] += 1
                st.failures_in_row += 1
                changed, st.failing = st.failing != err.reason, err.reason
                age = self.clock() - (st.last_success_mono if st.last_success_mono is not None else self.started)
                stale = st.last_good is None or age > self.max_age_s
                log_stale = self._mark_stale(st, age)
            if changed:
                serving = ("the annual value (fallback)" if stale
                           else f"the last good value {st.last_good.g_per_kwh:g} g/kWh" if st.last_good else "")
                log.warning("refresh failed", extra=kv(zone=zone, source=self.source.name, reason=err.reason,
                                                      age=f"{age:.0f}s", serving=serving, err=err.message))
            if log_stale:
                self._log_stale(zone, age)
        else:
            with self._lock:
                recovered, failures = st.failing, st.failures_in_row
                st.refreshes += 1
                st.last_good = value
                st.last_success_mono = self.clock()
                st.last_success_wall = self.wallclock()
                st.failing, st.failures_in_row, st.stale_logged = None, 0, False
            if recovered:
                log.info("refresh ok again", extra=kv(zone=zone, source=self.source.name, failed_attempts=failures,
                                                     value=f"{value.g_per_kwh:g}"))
            else:
                log.debug("refresh ok", extra=kv(zone=zone, source=self.source.name, value=f"{value.g_per_kwh:g}"))
        finally:
            st.first_done.set()

    def _mark_stale(self, st: ZoneState, age: float) -> bool:
        """True once per run of failures, when a live value first goes past --max-age (caller holds the lock)."""
        if st.last_good is None or age <= self.max_age_s or st.stale_logged:
            return False
        st.stale_logged = True
        return True

    def _log_stale(self, zone: str, age: float) -> None:
        # no good value for longer than --max-age: the annual value is served, with fallback=1
        log.warning("stale", extra=kv(zone=zone, source=self.source.name, age=f"{age:.0f}s",
                                      max_age=f"{self.max_age_s:g}s", serving="the annual value", fallback=1))

    def served(self, zone: str, now_mono: float | None = None) -> Served:
        now = self.clock() if now_mono is None else now_mono
        with self._lock:
            st = self.states[zone]
            since = st.last_success_mono if st.last_success_mono is not None else self.started
            age = max(0.0, now - since)
            value, fallback = st.last_good, False
            if st.unserved is not None or value is None or age > self.max_age_s:
                value, fallback = annual(zone)[0], True
            log_stale = self._mark_stale(st, age)     # a scrape may see it first (the refresh may be hanging)
            served = Served(value, fallback, age, st.last_success_wall, st.refreshes, dict(st.errors))
        if log_stale:
            self._log_stale(zone, age)
        return served

    def start(self) -> None:
        for zone, st in self.states.items():
            if st.unserved is not None:
                st.first_done.set()
                continue
            t = threading.Thread(target=self._loop, args=(zone,), name=f"refresh-{zone}", daemon=True)
            t.start()
            self._threads.append(t)

    def _loop(self, zone: str) -> None:
        session = RecordingSession() if self.source.needs_session else None
        try:
            while not self._stop.is_set():
                self.refresh(zone, session)
                if self._stop.wait(self.refresh_s):
                    break
        finally:
            if session is not None:
                session.close()

    def wait_first_round(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(st.first_done.wait(max(0.0, deadline - time.monotonic())) for st in self.states.values())

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=0.5)      # a request hung upstream is not waited for (daemon threads)


@dataclass(frozen=True)
class RunningJob:
    cluster: str
    job_id: str
    project: str
    phase: str


class Ledger:
    """Running jobs of the DuckDB ledger, read read-only each refresh; a failed read keeps the last list."""

    QUERY = ("SELECT cluster, job_id, project, phase FROM jobs WHERE start_ts <= ? AND (end_ts IS NULL OR end_ts > ?)"
             " ORDER BY cluster, job_id")

    def __init__(self, path: str, refresh_s: float, *, wallclock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.refresh_s = refresh_s
        self.wallclock = wallclock
        self.jobs: tuple[RunningJob, ...] = ()
        self.errors = dict.fromkeys(LEDGER_REASONS, 0)
        self.last_success_wall = 0.0
        self._failing: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.first_done = threading.Event()

    def refresh(self) -> None:
        from .. import db

        now = datetime.fromtimestamp(self.wallclock(), UTC)
        reason, message = "", ""
        jobs: list[RunningJob] = []
        try:
            if not Path(self.path).is_file():
                reason, message = "missing", f"{self.path}: no such database file"
            else:
                con = db.connect(self.path, read_only=True)
                try:
                    rows = con.execute(self.QUERY, [now, now]).fetchall()
                finally:
                    con.close()
                jobs = [RunningJob(str(c), str(j), str(p), str(ph)) for c, j, p, ph in rows]
        except DatabaseLocked as exc:
            reason, message = "locked", exc.message()
        except Exception as exc:   # InputError (unreadable), duckdb.Error (no jobs table, corrupt): counted
            text = exc.message() if isinstance(exc, WattprintError) else f"{type(exc).__name__}: {exc}"
            reason, message = "error", " ".join(text.split())
        with self._lock:
            changed = reason != (self._failing or "")
            self._failing = reason or None
            if reason:
                self.errors[reason] += 1
            else:
                self.jobs, self.last_success_wall = tuple(jobs), self.wallclock()
        if reason and changed:
            log.warning("ledger read failed; keeping the last running jobs", extra=kv(
                db=self.path, reason=reason, err=message, running_jobs=len(self.jobs)))
        elif not reason and changed:
            log.info("ledger read ok again", extra=kv(db=self.path, running_jobs=len(jobs)))
        self.first_done.set()

    def snapshot(self) -> tuple[tuple[RunningJob, ...], dict[str, int], float]:
        with self._lock:
            return self.jobs, dict(self.errors), self.last_success_wall

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ledger", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            if self._stop.wait(self.refresh_s):
                break

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)


# -- metrics --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterRow:
    cluster: str
    provider: str
    region: str
    zone: str
    pue: float


class IntensityCollector(Collector):
    """The families of the contract, built on each scrape from the refresher's and the ledger's state."""

    def __init__(self, refresher: Refresher, clusters: Sequence[ClusterRow], budgets_g: dict[str, float],
                 ledger: Ledger | None = None) -> None:
        self.refresher = refresher
        self.clusters = tuple(clusters)
        self.budgets_g = dict(budgets_g)
        self.ledger = ledger

    def collect(self) -> Iterator[Metric]:
        now = self.refresher.clock()
        value = GaugeMetricFamily("wattprint_grid_intensity_grams_per_kwh",
                                  "Grid carbon intensity in force for the current UTC hour (gCO2eq/kWh); one series "
                                  "per zone.", labels=["zone", "source", "basis"])
        age = GaugeMetricFamily("wattprint_grid_intensity_age_seconds",
                                "Seconds since the zone's value was last refreshed from its source (since start when "
                                "it never was).", labels=["zone"])
        last = GaugeMetricFamily("wattprint_grid_intensity_last_success_timestamp_seconds",
                                 "Unix time of the zone's last successful refresh (0: never).", labels=["zone"])
        fallback = GaugeMetricFamily("wattprint_grid_intensity_fallback",
                                     "1 when the shipped annual value (or the world value) is served because the live "
                                     "source has no usable value.", labels=["zone"])
        refreshes = CounterMetricFamily("wattprint_grid_intensity_refreshes", "Refresh attempts.", labels=["zone"])
        errors = CounterMetricFamily("wattprint_grid_intensity_refresh_errors", "Failed refresh attempts by reason.",
                                     labels=["zone", "reason"])
        for zone in self.refresher.states:
            s = self.refresher.served(zone, now)
            value.add_metric([zone, s.value.source, s.value.basis], s.value.g_per_kwh)
            age.add_metric([zone], s.age_s)
            last.add_metric([zone], s.last_success_wall)
            fallback.add_metric([zone], 1.0 if s.fallback else 0.0)
            refreshes.add_metric([zone], s.refreshes)
            for reason in REASONS:
                errors.add_metric([zone, reason], s.errors[reason])
        yield from (value, age, last, fallback, refreshes, errors)

        info = GaugeMetricFamily("wattprint_cluster_info", "The cluster -> zone mapping of the cluster config.",
                                 labels=["cluster", "provider", "region", "zone"])
        pue = GaugeMetricFamily("wattprint_cluster_pue_ratio", "The cluster's PUE (1.0 when unknown).",
                                labels=["cluster"])
        for c in self.clusters:
            info.add_metric([c.cluster, c.provider, c.region, c.zone], 1.0)
            pue.add_metric([c.cluster], c.pue)
        budget = GaugeMetricFamily("wattprint_project_carbon_budget_grams",
                                   "Monthly carbon budget of the project (config budgets.projects.<name>"
                                   ".monthly_kgco2eq), in grams.", labels=["project"])
        for project, grams in self.budgets_g.items():
            budget.add_metric([project], grams)
        yield from (info, pue, budget)

        if self.ledger is not None:
            jobs, ledger_errors, ledger_last = self.ledger.snapshot()
            running = GaugeMetricFamily("wattprint_job_project_info",
                                        "Running jobs of the ledger (--db) with their project and phase.",
                                        labels=["cluster", "job_id", "project", "phase"])
            for j in jobs:
                running.add_metric([j.cluster, j.job_id, j.project, j.phase], 1.0)
            lerr = CounterMetricFamily("wattprint_intensity_exporter_ledger_read_errors",
                                       "Failed reads of the --db ledger by reason (locked, missing, error).",
                                       labels=["reason"])
            for reason in LEDGER_REASONS:
                lerr.add_metric([reason], ledger_errors[reason])
            lok = GaugeMetricFamily("wattprint_intensity_exporter_ledger_last_success_timestamp_seconds",
                                    "Unix time of the last successful read of the --db ledger (0: never).")
            lok.add_metric([], ledger_last)
            yield from (running, lerr, lok)

        build = GaugeMetricFamily("wattprint_intensity_exporter_build_info", "Version of wattprint serve-intensity.",
                                  labels=["version"])
        build.add_metric([__version__], 1.0)
        yield build


# -- options --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    source: str
    zones: tuple[str, ...]
    clusters: tuple[ClusterRow, ...]
    budgets_g: dict[str, float]
    refresh_s: float
    timeout_s: float
    max_age_s: float
    basis: str
    csv: str | None
    token_file: str | None
    base_url: str | None
    db: str | None
    listen: str
    web_config_file: str | None
    log_level: str
    log_format: str = "logfmt"
    zones_from_flag: bool = False                          # --zone given: a zone the source cannot serve is an error
    unserved_clusters: tuple[tuple[str, str], ...] = ()   # (cluster, zone) whose zone is not served


def _seconds(text: str | None, flag: str, default: float) -> float:
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InputError(flag, f"{text!r} is not a number of seconds", f"e.g. {flag} {default:g}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(flag, f"expected a number of seconds > 0, got {text!r}", f"e.g. {flag} {default:g}")
    return value


def options(request: ServeRequest, environ: dict[str, str] | os._Environ[str] = os.environ) -> Options:
    """Check every flag and the config; InputError (exit 2, one line) names the flag."""
    from .. import config as config_mod

    source = (request.source or "").strip()
    if not source:
        raise InputError("--source", "required", f"pass --source {{{','.join(SOURCES)}}}")
    if source not in SOURCES:
        raise InputError("--source", f"unknown source {source!r}", f"use one of {', '.join(SOURCES)}")
    if source == "csv" and not request.csv:
        raise InputError("--csv", "--source csv needs --csv FILE", "a generic CSV: timestamp,zone,intensity_g_per_kwh")
    if request.csv and source != "csv":
        raise InputError("--csv", f"only used with --source csv, not {source}", "drop --csv or pass --source csv")
    if request.token_file and source not in ("electricitymaps", "watttime"):
        raise InputError("--token-file", f"{source} takes no credential", "drop --token-file")
    if request.base_url is not None:
        if source not in API_SOURCES:
            raise InputError("--base-url", f"{source} is not an API", "drop --base-url")
        if not request.base_url.startswith(("http://", "https://")):
            raise InputError("--base-url", f"{request.base_url!r} is not an http(s) URL", "e.g. https://api.example.com")
        if "@" in urlsplit(request.base_url).netloc:
            # the URL is named in every refresh warning; as `intensity fetch` does
            raise InputError("--base-url", "the URL contains credentials (user:password@)",
                             "remove them; API credentials come from --token-file or the environment")
    level = (request.log_level or "info").strip().lower()
    if level not in LOG_LEVELS:
        raise InputError("--log.level", f"unknown level {request.log_level!r}", f"use one of {', '.join(LOG_LEVELS)}")
    log_format = (request.log_format or "logfmt").strip().lower()
    if log_format not in LOG_FORMATS:
        raise InputError("--log.format", f"unknown format {log_format!r}", f"use one of {', '.join(LOG_FORMATS)}")
    refresh_s = _seconds(request.refresh_interval, "--refresh-interval", DEFAULT_REFRESH_S)
    timeout_s = _seconds(request.timeout, "--timeout", DEFAULT_TIMEOUT_S)
    max_age_s = _seconds(request.max_age, "--max-age", DEFAULT_MAX_AGE_S)
    if max_age_s <= refresh_s:
        raise InputError("--max-age", f"{max_age_s:g}s is not longer than --refresh-interval {refresh_s:g}s",
                         "a value would expire between two refreshes; raise --max-age (default 3 hours)")

    cfg_path = request.config or environ.get("WATTPRINT_CONFIG") or None
    cfg: Config = config_mod.load(cfg_path)
    clusters = tuple(ClusterRow(c.name, c.provider, c.region, c.zone or WORLD, c.pue if c.pue is not None else 1.0)
                     for c in cfg.clusters.values())
    zones: list[str] = []
    zones_from_flag = bool(request.zones)
    for z in request.zones:
        z = canonical_zone(z)     # the spelling the config's zones and imported data use (wattprint/pipeline/zones.py)
        if not z:
            raise InputError("--zone", "empty zone", "e.g. --zone FR")
        if z not in zones:
            zones.append(z)
    if not zones:
        zones = list(dict.fromkeys(c.zone for c in clusters))
    if not zones:
        where = f"config {cfg_path}" if cfg_path else "no --config (nor $WATTPRINT_CONFIG)"
        raise InputError("--zone", f"no zone to serve: {where} names no cluster",
                         "pass --zone ZONE (repeatable), or --config with clusters.<name>.zone")
    unserved_clusters = tuple((c.cluster, c.zone) for c in clusters if c.zone not in zones)
    budgets_g = {name: b.monthly_kgco2eq * 1000.0 for name, b in cfg.budgets.projects.items()}
    return Options(source=source, zones=tuple(zones), clusters=clusters, budgets_g=budgets_g, refresh_s=refresh_s,
                   timeout_s=timeout_s, max_age_s=max_age_s, basis=cfg.intensity.basis, csv=request.csv,
                   token_file=request.token_file, base_url=request.base_url, db=request.db,
                   listen=request.listen_address, web_config_file=request.web_config_file, log_level=level,
                   log_format=log_format, zones_from_flag=zones_from_flag,
                   unserved_clusters=unserved_clusters)


def build_source(opts: Options) -> Source:
    from . import sources

    source = sources.build(opts.source, base_url=opts.base_url, token_file=opts.token_file, csv=opts.csv,
                           basis=opts.basis, timeout_s=opts.timeout_s, max_age_s=opts.max_age_s)
    if opts.source == "uk" and opts.zones_from_flag:   # a zone passed with --zone must be one the API knows
        for z in opts.zones:
            why = source.unserved(z)
            if why is not None and z.lower() != WORLD:
                raise InputError("--zone", f"{z}: {why}", "use --zone GB or GB-<regionid>, or another --source")
    return source


def startup_warnings(opts: Options, refresher: Refresher) -> None:
    from ..sources.intensity import embedded

    world = embedded.world()
    for zone, st in refresher.states.items():
        if st.unserved is not None:
            log.warning("zone not asked from the source: serving the shipped annual value with fallback=1", extra=kv(
                zone=zone, source=opts.source, reason=st.unserved,
                serving="world average" if embedded.lookup(zone) is None else "its row"))
        elif opts.source != "annual" and embedded.lookup(zone) is None:
            log.warning("zone has no row in the shipped annual table: when the source has no value, the world average "
                        "(%g g/kWh) is served with fallback=1", world.g_per_kwh,
                        extra=kv(zone=zone, source=opts.source))
    for cluster, zone in opts.unserved_clusters:
        log.warning("cluster's zone is not among the served zones (--zone): PromQL joins on "
                    "wattprint_cluster_info find no intensity for it", extra=kv(cluster=cluster, zone=zone))
    if opts.source in API_SOURCES and opts.refresh_s < 60:
        log.warning("--refresh-interval %gs is below a minute: mind the API's rate limits", opts.refresh_s)


# -- command --------------------------------------------------------------------------------------------



def serve(opts: Options) -> int:
    """Check the address, web config and source (InputError: exit 2), then serve until SIGTERM/SIGINT."""
    from prometheus_client import CollectorRegistry, ProcessCollector

    from wattprint.common.logs import setup_logging
    from wattprint.common.web import CachedRenderer, MetricsServer, parse_listen_address
    from wattprint.common.webconfig import WebConfigError, load_web_config

    try:
        address = parse_listen_address(opts.listen)
    except ValueError as exc:
        raise InputError("--web.listen-address", str(exc)) from None
    web_config = None
    if opts.web_config_file:
        try:
            web_config = load_web_config(opts.web_config_file)
        except WebConfigError as exc:
            raise InputError("--web.config.file", str(exc)) from None
    source = build_source(opts)

    refresher = Refresher(source, opts.zones, opts.refresh_s, opts.max_age_s)
    ledger = Ledger(opts.db, opts.refresh_s) if opts.db else None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IntensityCollector(refresher, opts.clusters, opts.budgets_g, ledger))
    ProcessCollector(registry=registry)
    try:
        server = MetricsServer(address, CachedRenderer(registry), web_config)
    except OSError as exc:
        raise InputError("--web.listen-address", f"{opts.listen}: cannot listen ({exc.strerror})",
                         "is another process on that port?") from None
    registry.register(server.collector("wattprint_intensity_exporter_http"))

    setup_logging(opts.log_level, opts.log_format)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra=kv(signal=signal.Signals(signum).name))
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    startup_warnings(opts, refresher)
    refresher.start()
    if ledger is not None:
        ledger.start()
    # the first scrape should see the first refresh, not a spurious fallback; a hanging source delays it by
    # about --timeout at most, then the server starts anyway
    first_round = opts.timeout_s + 1.0
    if not refresher.wait_first_round(first_round) or (ledger is not None and not ledger.first_done.wait(1.0)):
        log.warning("first refresh not done after %gs: serving meanwhile", first_round)
    server.start()
    log.info("listening", extra=kv(
        address=f"{server.host}:{server.port}", tls=server.tls, source=opts.source, zones=",".join(opts.zones),
        refresh_interval=f"{opts.refresh_s:g}s", max_age=f"{opts.max_age_s:g}s", db=opts.db or "-"))
    stop.wait()
    server.shutdown()
    refresher.stop()
    if ledger is not None:
        ledger.stop()
    return 0
