"""`wattprint compact`: its flags (the verb is wattprint/pipeline/verbs.py:compact)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..verb_requests import CompactRequest
from . import flags

if TYPE_CHECKING:
    from ..settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "compact", help="close the months older than the retention: delete their samples, keep their results",
        description="Close every UTC month that ended more than --keep-samples-days ago: its samples (and the "
                    "energy intervals built from them) are deleted; its results, telemetry gaps, counter stepbacks "
                    "and RAPL readability are kept and never rebuilt again. Imports that reach a closed month are "
                    "stored but do not change its results; ingest refuses a window that starts in one.")
    flags.common(p)
    p.add_argument("--keep-samples-days", type=int, default=90, metavar="DAYS",
                   help="keep the samples of the last DAYS days, rounded back to a month's start (default 90)")
    p.add_argument("--rewrite", action="store_true",
                   help="then copy the database to a new file in its place, so that the file shrinks (DuckDB reuses "
                        "freed space but does not give it back); needs room for the copy and no other process on it")


def request(args: argparse.Namespace) -> CompactRequest:
    return CompactRequest(args.keep_samples_days, args.rewrite, db=args.db, quiet=args.quiet)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..verbs import compact

    return compact(request(args), settings)
