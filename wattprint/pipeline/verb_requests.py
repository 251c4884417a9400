"""Every pipeline verb's typed request (its flags, as values) and the closed sets and defaults its flags offer.

Plain data that imports nothing else of the pipeline, so that the command line (wattprint/pipeline/cli/) is built
and parsed without loading any verb: a verb's implementation, DuckDB and pyarrow are imported only when that
verb runs (tests/test_cli_imports.py). The modules that check these values import them from here (config.py,
scope2.py, month.py, report/run.py, live/), so each is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# `wattprint report --format`, `wattprint run --format` (its default set: html and json)
REPORT_FORMATS = ("md", "html", "json", "csv", "model-card")
RUN_FORMATS = ("md", "html", "json", "csv")
DEFAULT_RUN_FORMATS = ("html", "json")
# --idle-policy and the config's report.idle_policy; --scope2-basis and report.scope2_basis
IDLE_POLICIES = ("pro-rata", "separate")
SCOPE2_BASES = ("location", "market")
# `wattprint serve-intensity`: --source, and the defaults of its flags
SERVE_SOURCES = ("electricitymaps", "uk", "watttime", "csv", "annual")
DEFAULT_LISTEN = ":9837"
DEFAULT_REFRESH_S = 300.0
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_AGE_S = 3 * 3600.0


@dataclass(frozen=True)
class PromSource:
    """A Prometheus-compatible API, as the --prometheus* flags name it. Secrets are only files (or the
    environment), read when the client is made."""

    url: str
    token_file: str | None = None
    user: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    tenant: str | None = None
    timeout_s: float = 30.0
    retries: int = 5


@dataclass(frozen=True)
class IngestRequest:
    """`wattprint ingest`: the energy series of [start, end) at `step` seconds (None: config ingest.step_seconds)."""

    prometheus: PromSource
    start: str
    end: str
    step: int | None = None
    match: tuple[str, ...] = ()        # LABEL=VALUE
    power_metric: str | None = None
    db: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class JobsImportRequest:
    """`wattprint jobs import PATH --format FORMAT`."""

    path: str
    format: str
    cluster: str | None = None         # for rows that name none; None: the config's default cluster
    timezone: str | None = None        # of sacct --parsable2 times
    rules: str | None = None           # phase rules YAML; None: config phase_rules
    db: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class JobsSyncRequest:
    """`wattprint jobs sync-kubernetes`: the window's pods, from kube-state-metrics series, as jobs of `cluster`."""

    prometheus: PromSource
    start: str
    end: str
    cluster: str
    step: int = 300
    project_label: str = "label_wattprint_io_project"
    phase_label: str = "label_wattprint_io_phase"
    rules: str | None = None
    db: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class IntensityImportRequest:
    """`wattprint intensity import PATH --format FORMAT`."""

    path: str
    format: str
    zone: str | None = None            # for formats that carry none
    basis: str | None = None           # Electricity Maps CSV column; None: config intensity.basis
    db: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class IntensityFetchRequest:
    """`wattprint intensity fetch`: [start, end) of `zone` from the `source` API."""

    source: str
    zone: str
    start: str
    end: str
    token_file: str | None = None      # the Electricity Maps token or the WattTime password
    base_url: str | None = None
    db: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class BuildRequest:
    """`wattprint build`: the results again from what is stored."""

    db: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class CompactRequest:
    """`wattprint compact`: close the UTC months that ended over `keep_samples_days` ago and delete their samples."""

    keep_samples_days: int = 90
    rewrite: bool = False             # then copy the file so that it shrinks
    db: str | None = None
    quiet: bool = False
    now: datetime | None = None       # None: the clock (tests pin it)


@dataclass(frozen=True)
class ReportRequest:
    """One `wattprint report`, as its flags give it (run checks it): the window, the scope, the output."""

    month: str | None = None
    start: str | None = None
    end: str | None = None
    project: str | None = None
    phases: tuple[str, ...] = ()
    format: str = "md"
    out: str | None = None
    layers: str | None = None          # comma-separated; None: config report.layers
    idle_policy: str | None = None     # None: config report.idle_policy
    estimates: str | None = None       # manual phases YAML
    top_jobs: int = 10
    time_shift_slack: int = 24       # hours: the latest start the time-shift what-if considers
    db: str | None = None
    quiet: bool = False
    scope2_basis: str | None = None    # None: config report.scope2_basis


@dataclass(frozen=True)
class RunRequest:
    """One `wattprint run`: the window (none: the previous UTC month), the Prometheus API, the sources of each step
    (None: the step is not run) and the report set. Each group means what the single verb's flags of the same
    name mean."""

    prometheus: PromSource
    month: str | None = None
    start: str | None = None
    end: str | None = None
    # ingest
    step: int | None = None
    match: tuple[str, ...] = ()
    power_metric: str | None = None
    # job ledger
    sync_kubernetes: str | None = None      # the cluster the pods run in
    project_label: str = JobsSyncRequest.project_label
    phase_label: str = JobsSyncRequest.phase_label
    sacct: bool = False
    sacct_args: str = ""                    # more sacct flags, split as a shell would
    jobs_file: str | None = None
    jobs_format: str | None = None
    timezone: str | None = None
    rules: str | None = None
    # grid intensity
    intensity_source: str | None = None
    intensity_zone: str | None = None
    intensity_token_file: str | None = None
    intensity_base_url: str | None = None
    intensity_file: str | None = None
    intensity_format: str | None = None
    # reports
    out_dir: str = "reports"
    formats: tuple[str, ...] = ()           # none: DEFAULT_RUN_FORMATS
    layers: str | None = None
    idle_policy: str | None = None
    estimates: str | None = None
    top_jobs: int = 10
    scope2_basis: str | None = None         # None: config report.scope2_basis
    # retention
    keep_samples_days: int | None = None    # then `compact --keep-samples-days`; None: no compaction
    db: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class ServeRequest:
    """`wattprint serve-intensity` as its flags give it, text as typed; options() checks it."""

    source: str | None = None
    zones: tuple[str, ...] = ()             # --zone, repeatable; none: the configured clusters' zones
    csv: str | None = None
    token_file: str | None = None
    base_url: str | None = None
    refresh_interval: str | None = None     # seconds; None: the default
    timeout: str | None = None
    max_age: str | None = None
    config: str | None = None               # None: $WATTPRINT_CONFIG
    db: str | None = None
    listen_address: str = DEFAULT_LISTEN
    web_config_file: str | None = None
    log_level: str | None = None
    log_format: str | None = None
