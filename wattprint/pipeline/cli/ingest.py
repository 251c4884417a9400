"""`wattprint ingest`: its flags (the verb is wattprint/pipeline/verbs.py:ingest)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..verb_requests import IngestRequest
from . import flags

if TYPE_CHECKING:
    from ..settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ingest", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="pull GPU and job energy series from a Prometheus-compatible API into DuckDB",
        description="Pull energy counters (wattprint exporter, dcgm-exporter, AMD device-metrics-exporter) and power "
        "gauges over [--start, --end] at --step, store them, and rebuild the (job, GPU, hour) results. Re-running "
        "a window replaces it; each query_range chunk commits on its own, so an interrupted run is completed by "
        "running it again.",
    )
    flags.prometheus(p)
    flags.window(p)
    flags.ingest_selection(p)
    flags.common(p)


def request(args: argparse.Namespace) -> IngestRequest:
    return IngestRequest(prometheus=flags.prom_source(args), start=args.start, end=args.end, step=args.step,
                         match=tuple(args.match), power_metric=args.power_metric, db=args.db, quiet=args.quiet)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..verbs import ingest

    return ingest(request(args), settings)
