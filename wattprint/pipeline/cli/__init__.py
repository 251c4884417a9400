"""The `wattprint` batch command: parse flags, run one verb, turn expected failures into one line.

Exit status: 0 done, 1 an upstream server or the database failed, 2 bad input (flag, file, row,
config). Only a bug prints a traceback.

Building the parser loads no verb: each cli/<verb>.py imports only argparse, flags.py and the typed requests
(wattprint/pipeline/verb_requests.py) at its top, and its handler imports the verb's implementation when it runs,
so `wattprint --help` and `wattprint jobs import` do not pay for DuckDB, the model, the reports or the live server
they do not use (tests/test_cli_imports.py).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from wattprint.common.logs import LOG_FORMATS, LOG_LEVELS

from .. import __version__
from ..errors import WattprintError


@dataclass(frozen=True)
class Verb:
    """Where a verb's handler lives, "module:function" under wattprint.pipeline.cli: it turns the parsed flags into
    the verb's typed request and calls the verb's function. `settings`: it is called (args, Settings) with the
    cluster config loaded, else (args); `guarded`: WattprintError and Ctrl-C become one line."""

    target: str
    settings: bool = True
    guarded: bool = True

    def handler(self) -> Callable[..., int]:
        module, _, function = self.target.partition(":")
        handler: Callable[..., int] = getattr(importlib.import_module(f".{module}", __name__), function)
        return handler


# every verb, by (verb, action): the one place the command tree is dispatched from
VERBS: dict[tuple[str, str | None], Verb] = {
    ("demo", None): Verb("demo:run", settings=False),
    ("demo", "exporter"): Verb("demo:run_exporter", settings=False, guarded=False),
    ("ingest", None): Verb("ingest:run"),
    ("jobs", "import"): Verb("jobs:run_import"),
    ("jobs", "sync-kubernetes"): Verb("jobs:run_sync"),
    ("intensity", "import"): Verb("intensity:run_import"),
    ("intensity", "fetch"): Verb("intensity:run_fetch"),
    ("build", None): Verb("build:run"),
    ("compact", None): Verb("compact:run"),
    ("report", None): Verb("report:run"),
    ("run", None): Verb("run:run"),
    ("estimate", None): Verb("estimate:run", settings=False),
    ("serve-intensity", None): Verb("serve_intensity:run", settings=False),
}

EPILOG = """\
environment:
  WATTPRINT_DB                    DuckDB file when --db is not given (default ./wattprint.duckdb)
  WATTPRINT_CONFIG                cluster config file when --config is not given
  WATTPRINT_MEMORY_LIMIT          DuckDB's memory limit, e.g. 8GiB (default 3 GiB, or 80 % of RAM if lower)
  WATTPRINT_PROMETHEUS_TOKEN      bearer token for --prometheus (or --prometheus-token-file)
  WATTPRINT_PROMETHEUS_PASSWORD   basic-auth password for --prometheus-user (or --prometheus-password-file)
  ELECTRICITYMAPS_TOKEN[_FILE]    Electricity Maps API token for `intensity fetch` and `serve-intensity`
  WATTTIME_USERNAME, WATTTIME_PASSWORD[_FILE]  WattTime credentials for `intensity fetch` and `serve-intensity`
Secrets are never accepted on the command line and never printed.

exit status: 0 ok, 1 upstream/database failure, 2 bad input
"""


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

    from . import build, compact, demo, estimate, ingest, intensity, jobs, report, run, serve_intensity

    demo.add_parser(sub)
    ingest.add_parser(sub)
    jobs.add_parser(sub)
    intensity.add_parser(sub)
    build.add_parser(sub)
    compact.add_parser(sub)
    report.add_parser(sub)
    run.add_parser(sub)
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
        from wattprint.common.redact import redact_text

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
