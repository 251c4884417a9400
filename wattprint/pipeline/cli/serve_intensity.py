"""`wattprint serve-intensity`: its flags and help (the server is wattprint/pipeline/live/intensity_server.py)."""

from __future__ import annotations

import argparse

from wattprint.common.logs import LOG_FORMATS, LOG_LEVELS

from ..files import MAX_INTENSITY_FILE_BYTES, MIB
from ..verb_requests import (
    DEFAULT_LISTEN,
    DEFAULT_MAX_AGE_S,
    DEFAULT_REFRESH_S,
    DEFAULT_TIMEOUT_S,
    SERVE_SOURCES,
    ServeRequest,
)

DESCRIPTION = """\
Serve the grid carbon intensity in force now for each zone, from --source, as Prometheus metrics, with the
cluster -> zone mapping, PUE and project budgets from --config (and running jobs' projects with --db), so
PromQL can turn GPU power into gCO2eq/s. Each zone is refreshed every --refresh-interval in the background;
when the source fails, the last good value is kept and its age grows; after --max-age without a good value the
shipped annual value is served with wattprint_grid_intensity_fallback 1. Metrics: docs/operations.md.
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve-intensity", formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="serve the current grid intensity per zone (and the cluster -> zone mapping) to "
                       "Prometheus", description=DESCRIPTION)
    p.add_argument("--config", metavar="FILE",
                   help="cluster config YAML: clusters (zone, PUE, provider, region) and budgets "
                   "(default: $WATTPRINT_CONFIG)")
    p.add_argument("--source", metavar="{" + ",".join(SERVE_SOURCES) + "}",
                   help="where the current intensity comes from (required); annual: the shipped annual table")
    p.add_argument("--zone", action="append", metavar="ZONE",
                   help="zone to serve (repeatable; default: the zones of the configured clusters). For uk: GB or "
                   "GB-<regionid>; for watttime: a WattTime region")
    p.add_argument("--csv", metavar="FILE",
                   help="for --source csv: a generic CSV timestamp,zone,intensity_g_per_kwh (a regular file of at "
                   f"most {MAX_INTENSITY_FILE_BYTES // MIB} MiB, read once each time it changes); the row covering "
                   "the current hour is served")
    p.add_argument("--token-file", metavar="FILE",
                   help="file holding the Electricity Maps token or the WattTime password (else "
                   "ELECTRICITYMAPS_TOKEN[_FILE], WATTTIME_USERNAME + WATTTIME_PASSWORD[_FILE])")
    p.add_argument("--base-url", metavar="URL", help="API base URL (a mirror or proxy)")
    p.add_argument("--refresh-interval", metavar="SECONDS",
                   help=f"how often each zone is refreshed (default: {DEFAULT_REFRESH_S:g}; fractions allowed)")
    p.add_argument("--timeout", metavar="SECONDS",
                   help=f"per-request timeout (default: {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--max-age", metavar="SECONDS",
                   help=f"a live value not refreshed for longer is no longer served: the annual value is, with "
                   f"fallback 1 (default: {DEFAULT_MAX_AGE_S:g}, 3 hours)")
    p.add_argument("--db", metavar="PATH",
                   help="DuckDB ledger to read running jobs from, read-only, each refresh "
                   "(wattprint_job_project_info); default: none ($WATTPRINT_DB is not used)")
    p.add_argument("--web.listen-address", dest="listen_address", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help="address to serve /metrics on: HOST:PORT, :PORT or [IPV6]:PORT (default: %(default)s)")
    p.add_argument("--web.config.file", dest="web_config_file", metavar="PATH",
                   help="exporter-toolkit web config: TLS and basic auth (as for wattprint-exporter)")
    p.add_argument("--log.level", dest="log_level", default=None, metavar="{" + ",".join(LOG_LEVELS) + "}",
                   help="log level (default: info)")
    p.add_argument("--log.format", dest="log_format", default=None, metavar="{" + ",".join(LOG_FORMATS) + "}",
                   help="log line format on stderr: logfmt (key=value) or json, one object per line "
                   "(default: logfmt)")


def request(args: argparse.Namespace) -> ServeRequest:
    """The flags as a request; the global --log.level/--log.format apply where the verb's own are not given."""
    return ServeRequest(
        source=args.source, zones=tuple(args.zone or ()), csv=args.csv, token_file=args.token_file,
        base_url=args.base_url, refresh_interval=args.refresh_interval, timeout=args.timeout, max_age=args.max_age,
        config=args.config, db=args.db, listen_address=args.listen_address, web_config_file=args.web_config_file,
        log_level=args.log_level or getattr(args, "global_log_level", None),
        log_format=args.log_format or getattr(args, "global_log_format", None))


def run(args: argparse.Namespace) -> int:
    """Check flags and config (InputError: exit 2), then serve until SIGTERM/SIGINT."""
    from ..live.intensity_server import options, serve

    return serve(options(request(args)))
