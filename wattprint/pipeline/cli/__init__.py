"""The `wattprint` batch command: parse flags, run one verb, turn expected failures into one line.

Exit status: 0 done, 1 an upstream server or the database failed, 2 bad input (flag, file, row,
config). Only a bug prints a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .. import __version__
from ..errors import WattprintError

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("logfmt", "json")


@dataclass(frozen=True)
class Verb:
    """Where a verb's handler lives, "module:function" under wattprint.pipeline, imported when the verb runs (so
    `--help` and `estimate` load neither DuckDB nor pyarrow); `settings`: it is called (args, Settings) with the
    cluster config loaded, else (args); `guarded`: WattprintError and Ctrl-C become one line."""

    target: str
    settings: bool = True
    guarded: bool = True

    def handler(self) -> Callable[..., int]:
        module, _, function = self.target.partition(":")
        handler: Callable[..., int] = getattr(importlib.import_module(f"..{module}", __name__), function)
        return handler


# every verb, by (verb, action): the one place the command tree is dispatched from
VERBS: dict[tuple[str, str | None], Verb] = {
    ("demo", None): Verb("cli.demo:run", settings=False),
    ("demo", "exporter"): Verb("cli.demo:run_exporter", settings=False, guarded=False),
    ("ingest", None): Verb("verbs:ingest"),
    ("jobs", "import"): Verb("verbs:jobs_import"),
    ("jobs", "sync-kubernetes"): Verb("verbs:jobs_sync_kubernetes"),
    ("intensity", "import"): Verb("verbs:intensity_import"),
    ("intensity", "fetch"): Verb("verbs:intensity_fetch"),
    ("build", None): Verb("verbs:build"),
    ("report", None): Verb("verbs:report"),
    ("run", None): Verb("month:run"),
    ("estimate", None): Verb("cli.estimate:run", settings=False),
    ("serve-intensity", None): Verb("cli.serve_intensity:run", settings=False),
}

JOB_FORMATS = ("csv", "yaml", "sacct-json", "sacct-parsable")
INTENSITY_FORMATS = ("electricitymaps-csv", "electricitymaps-json", "uk-json", "watttime-json", "csv")
FETCH_SOURCES = ("electricitymaps", "uk", "watttime")

EPILOG = """\
environment:
  WATTPRINT_DB                    DuckDB file when --db is not given (default ./wattprint.duckdb)
  WATTPRINT_CONFIG                cluster config file when --config is not given
  WATTPRINT_PROMETHEUS_TOKEN      bearer token for --prometheus (or --prometheus-token-file)
  WATTPRINT_PROMETHEUS_PASSWORD   basic-auth password for --prometheus-user (or --prometheus-password-file)
  ELECTRICITYMAPS_TOKEN[_FILE]    Electricity Maps API token for `intensity fetch` and `serve-intensity`
  WATTTIME_USERNAME, WATTTIME_PASSWORD[_FILE]  WattTime credentials for `intensity fetch` and `serve-intensity`
Secrets are never accepted on the command line and never printed.

exit status: 0 ok, 1 upstream/database failure, 2 bad input
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="PATH", help="DuckDB file (default: $WATTPRINT_DB or ./wattprint.duckdb)")
    p.add_argument("--config", metavar="FILE",
                   help="cluster config YAML (default: $WATTPRINT_CONFIG; without one, embedded defaults)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def _prometheus(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Prometheus-compatible API (Prometheus, VictoriaMetrics, Thanos, Mimir, Cortex)")
    g.add_argument("--prometheus", metavar="URL", required=True, help="base URL, e.g. http://prometheus:9090")
    g.add_argument("--prometheus-token-file", metavar="FILE",
                   help="file holding a bearer token (else $WATTPRINT_PROMETHEUS_TOKEN)")
    g.add_argument("--prometheus-user", metavar="USER", help="basic-auth user (password from file or env)")
    g.add_argument("--prometheus-password-file", metavar="FILE",
                   help="file holding the basic-auth password (else $WATTPRINT_PROMETHEUS_PASSWORD)")
    g.add_argument("--prometheus-ca-file", metavar="FILE", help="CA bundle to verify the server's TLS certificate")
    g.add_argument("--prometheus-tenant", metavar="ID", help="tenant, sent as X-Scope-OrgID (Mimir, Cortex)")
    g.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="per-request timeout (default: %(default)s)")
    g.add_argument("--retries", type=int, default=5, metavar="N",
                   help="retries on connection errors, 429 and 5xx, with exponential backoff (default: %(default)s)")


def _window(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--start", required=required, metavar="ISO8601",
                   help="window start with an offset, e.g. 2024-03-01T00:00:00Z")
    p.add_argument("--end", required=required, metavar="ISO8601", help="window end with an offset")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="wattprint",
        description="Measured GPU energy -> per-project carbon. Pull energy from Prometheus into DuckDB, join it "
        "with the job ledger and hourly grid carbon intensity, and report it.",
        epilog=EPILOG, formatter_class=fmt,
    )
    p.add_argument("--version", action="version", version=f"wattprint {__version__}")
    _log_flags(p)
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    from . import demo, estimate, report, run, serve_intensity

    demo.add_parser(sub)

    ing = sub.add_parser(
        "ingest", formatter_class=fmt,
        help="pull GPU and job energy series from a Prometheus-compatible API into DuckDB",
        description="Pull energy counters (wattprint exporter, dcgm-exporter) and power gauges over "
        "[--start, --end] at --step, store them, and rebuild the (job, GPU, hour) results. Re-running a "
        "window replaces it; each query_range chunk commits on its own, so an interrupted run is completed "
        "by running it again.",
    )
    _prometheus(ing)
    _window(ing)
    ing.add_argument("--step", type=int, default=None, metavar="SECONDS",
                     help="sampling step (default: config ingest.step_seconds, else 60)")
    ing.add_argument("--match", action="append", default=[], metavar="LABEL=VALUE",
                     help="only series with this label value (repeatable; values are escaped)")
    ing.add_argument("--power-metric", metavar="NAME",
                     help="a power gauge in watts for GPUs without an energy counter (integrated, flagged)")
    _common(ing)

    jobs = sub.add_parser("jobs", help="the job ledger: which job belongs to which project and phase")
    jsub = jobs.add_subparsers(dest="action", metavar="ACTION", required=True)
    ji = jsub.add_parser("import", formatter_class=fmt, help="import jobs from a file",
                         description="Import jobs (all or nothing). Re-importing a job replaces it.\n"
                         "csv/yaml columns: job_id,project,phase,cluster,user,start,end,nodes,gpus")
    ji.add_argument("path", metavar="PATH", help="the ledger file")
    ji.add_argument("--format", required=True, choices=JOB_FORMATS, help="the file's format")
    ji.add_argument("--cluster", metavar="NAME",
                    help="cluster for rows that name none (sacct-json uses the job's own cluster first)")
    ji.add_argument("--timezone", metavar="IANA",
                    help="zone of sacct --parsable2 Start/End (they carry no offset), e.g. Europe/Paris")
    ji.add_argument("--rules", metavar="FILE", help="phase rules YAML (default: config phase_rules)")
    _common(ji)
    jk = jsub.add_parser("sync-kubernetes", formatter_class=fmt,
                         help="import pods from kube-state-metrics series in Prometheus as jobs",
                         description="Read kube_pod_info and kube_pod_labels over the window; each pod becomes a "
                         "job keyed by its uid (what the exporter reports as job_id).")
    _prometheus(jk)
    _window(jk)
    jk.add_argument("--cluster", metavar="NAME", required=True, help="cluster these pods run in")
    jk.add_argument("--step", type=int, default=300, metavar="SECONDS",
                    help="resolution of pod start/end (default: %(default)s)")
    jk.add_argument("--project-label", default="label_wattprint_io_project", metavar="LABEL",
                    help="kube_pod_labels label holding the project (default: %(default)s; else the namespace)")
    jk.add_argument("--phase-label", default="label_wattprint_io_phase", metavar="LABEL",
                    help="kube_pod_labels label holding the phase (default: %(default)s)")
    jk.add_argument("--rules", metavar="FILE", help="phase rules YAML (default: config phase_rules)")
    _common(jk)

    inten = sub.add_parser("intensity", help="hourly grid carbon intensity per zone (gCO2eq/kWh, UTC)")
    isub = inten.add_subparsers(dest="action", metavar="ACTION", required=True)
    ii = isub.add_parser("import", help="import intensity from a file (all or nothing)")
    ii.add_argument("path", metavar="PATH", help="the intensity file")
    ii.add_argument("--format", required=True, choices=INTENSITY_FORMATS, help="the file's format")
    ii.add_argument("--zone", metavar="ZONE", help="zone for formats that carry none (required then)")
    ii.add_argument("--basis", choices=("lifecycle", "direct"),
                    help="Electricity Maps CSV column to use (default: config intensity.basis, else lifecycle)")
    _common(ii)
    ifetch = isub.add_parser("fetch", formatter_class=fmt, help="fetch intensity from an API",
                             description="Fetch hourly intensity, chunked by each API's window limit.")
    ifetch.add_argument("--source", required=True, choices=FETCH_SOURCES, help="the API to ask")
    ifetch.add_argument("--zone", required=True, metavar="ZONE",
                        help="Electricity Maps zone (FR, US-CAL-CISO), UK: GB or a region id, WattTime region")
    _window(ifetch)
    ifetch.add_argument("--token-file", metavar="FILE",
                        help="file holding the Electricity Maps token or the WattTime password (else "
                        "ELECTRICITYMAPS_TOKEN[_FILE] or WATTTIME_PASSWORD[_FILE]; the WattTime user is "
                        "$WATTTIME_USERNAME); uk takes none")
    ifetch.add_argument("--base-url", metavar="URL", help="API base URL (a mirror or proxy)")
    _common(ifetch)

    b = sub.add_parser("build", help="rebuild the (job, GPU, hour) results from what is stored (after a config change)")
    _common(b)

    report.add_parser(sub, _common)
    run.add_parser(sub, _common, _prometheus)
    estimate.add_parser(sub)
    serve_intensity.add_parser(sub)
    return p


def _log_flags(p: argparse.ArgumentParser) -> None:
    # global: before or after the verb; serve-intensity's own --log.level/--log.format win over these
    p.add_argument("--log.level", dest="global_log_level", choices=LOG_LEVELS, default=None,
                   help="log level of every verb's log lines on stderr (default: warning; serve-intensity: info)")
    p.add_argument("--log.format", dest="global_log_format", choices=LOG_FORMATS, default=None,
                   help="log line format on stderr: logfmt (key=value) or json, one object per line "
                   "(default: logfmt)")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except ModuleNotFoundError as exc:
        # an exporter-only install (pip install wattprint): one line, not a traceback
        if exc.name not in ("duckdb", "pyarrow", "pytz"):
            raise
        print(f"wattprint: the pipeline needs its dependencies (no module {exc.name}): "
              "pip install 'wattprint[pipeline]'", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`wattprint estimate ... | head`): stop quietly, as cat and grep do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


class _RedactingFormatter(logging.Formatter):
    """URLs in log lines through a host program's handlers lose user:password@ and secret query values."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        from wattprint.common.safehttp import redact_text

        return redact_text(self._inner.format(record))


def _setup_logging(args: argparse.Namespace) -> None:
    """Batch verbs log to stderr as the exporter does (logfmt or JSON, redacted); serve-intensity sets its own."""
    from wattprint.common.logs import HANDLER_NAME, setup_logging

    root = logging.getLogger()
    foreign = [h for h in root.handlers if h.get_name() != HANDLER_NAME]
    if foreign:  # embedded (pytest, a host program), as logging.basicConfig would: its handlers stay, redacted
        for handler in foreign:
            if not isinstance(handler.formatter, _RedactingFormatter):
                handler.setFormatter(_RedactingFormatter(handler.formatter))
        return
    setup_logging(args.global_log_level or "warning", args.global_log_format or "logfmt", logger="")


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # the global log flags given after the verb
        late = argparse.ArgumentParser(prog="wattprint", add_help=False)
        _log_flags(late)
        more, extra = late.parse_known_args(extra)
        for key in ("global_log_level", "global_log_format"):
            if getattr(more, key) is not None:
                setattr(args, key, getattr(more, key))
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _setup_logging(args)
    action = getattr(args, "action", None)
    verb = VERBS[args.verb, action]
    if not verb.guarded:
        return verb.handler()(args)
    name = args.verb + (f" {action}" if action else "")
    try:
        handler = verb.handler()
        if verb.settings:
            from ..settings import load_settings

            return handler(args, load_settings(args.config or os.environ.get("WATTPRINT_CONFIG") or None))
        return handler(args)
    except WattprintError as exc:
        print(f"wattprint {name}: error: {exc.message()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"wattprint {name}: interrupted; whole chunks already written are kept, re-run to complete",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
