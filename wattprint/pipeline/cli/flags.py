"""Flag groups more than one verb shares, and what they turn into: the database and quiet flags, the Prometheus
connection (a `PromSource`), a window."""

from __future__ import annotations

import argparse

from ..verb_requests import PromSource

JOB_FORMATS = ("csv", "yaml", "sacct-json", "sacct-parsable")
INTENSITY_FORMATS = ("electricitymaps-csv", "electricitymaps-json", "uk-json", "watttime-json", "csv")
FETCH_SOURCES = ("electricitymaps", "uk", "watttime")


def common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="PATH", help="DuckDB file (default: $WATTPRINT_DB or ./wattprint.duckdb)")
    p.add_argument("--config", metavar="FILE",
                   help="cluster config YAML (default: $WATTPRINT_CONFIG; without one, embedded defaults)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")


def prometheus(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Prometheus-compatible API (Prometheus, VictoriaMetrics, Thanos, Mimir, Cortex)")
    g.add_argument("--prometheus", metavar="URL", required=True, help="base URL, e.g. http://prometheus:9090")
    g.add_argument("--prometheus-token-file", metavar="FILE",
                   help="file holding a bearer token (else $WATTPRINT_PROMETHEUS_TOKEN)")
    g.add_argument("--prometheus-user", metavar="USER", help="basic-auth user (password from file or env)")
    g.add_argument("--prometheus-password-file", metavar="FILE",
                   help="file holding the basic-auth password (else $WATTPRINT_PROMETHEUS_PASSWORD)")
    g.add_argument("--prometheus-ca-file", metavar="FILE", help="CA bundle to verify the server's TLS certificate")
    g.add_argument("--prometheus-tenant", metavar="ID", help="tenant, sent as X-Scope-OrgID (Mimir, Cortex)")
    g.add_argument("--timeout", type=float, default=PromSource.timeout_s, metavar="SECONDS",
                   help="per-request timeout (default: %(default)s)")
    g.add_argument("--retries", type=int, default=PromSource.retries, metavar="N",
                   help="retries on connection errors, 429 and 5xx, with exponential backoff (default: %(default)s)")


def prom_source(args: argparse.Namespace) -> PromSource:
    return PromSource(url=args.prometheus, token_file=args.prometheus_token_file, user=args.prometheus_user,
                      password_file=args.prometheus_password_file, ca_file=args.prometheus_ca_file,
                      tenant=args.prometheus_tenant, timeout_s=args.timeout, retries=args.retries)


def ingest_selection(g: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """What `wattprint ingest` pulls (and `wattprint run`'s ingest step)."""
    g.add_argument("--step", type=int, default=None, metavar="SECONDS",
                   help="sampling step (default: config ingest.step_seconds, else 60)")
    g.add_argument("--match", action="append", default=[], metavar="LABEL=VALUE",
                   help="only series with this label value (repeatable; values are escaped)")
    g.add_argument("--power-metric", metavar="NAME",
                   help="a power gauge in watts for GPUs without an energy counter (integrated, flagged)")


def window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", required=True, metavar="ISO8601",
                   help="window start with an offset, e.g. 2024-03-01T00:00:00Z")
    p.add_argument("--end", required=True, metavar="ISO8601", help="window end with an offset")
