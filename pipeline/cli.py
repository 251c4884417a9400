"""The `wattprint` batch command.

Only `demo` works today; ingest, jobs, intensity and report are the subject of
open issues and say so (exit status 3) instead of pretending to run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__

PENDING = {
    "ingest": "pull GPU energy series from a Prometheus-compatible API into DuckDB (issue #3)",
    "jobs": "import the job ledger: csv, yaml, sacct, Kubernetes labels (issue #3)",
    "intensity": "import or fetch hourly grid carbon intensity (issue #3)",
    "report": "per-project phase, monthly and model-card reports (issue #4)",
}
NOT_YET_EXIT = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wattprint",
        description="Measured GPU energy -> per-project carbon reports. "
        "Verbs marked [not yet implemented] exit with status 3.",
    )
    p.add_argument("--version", action="version", version=f"wattprint {__version__}")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    demo = sub.add_parser(
        "demo",
        help="run a replay exporter (real H100 trace, no GPU needed) with jobs on its virtual GPUs "
        "and show the energy it measures",
    )
    demo.add_argument("--gpus", type=int, default=4, help="virtual GPUs (default: %(default)s)")
    demo.add_argument("--seconds", type=float, default=6.0, help="how long to measure (default: %(default)s)")
    for verb, what in PENDING.items():
        sub.add_parser(verb, help=f"[not yet implemented] {what}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.verb == "demo":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        from .demo import run_demo

        if args.gpus < 1 or args.seconds <= 0:
            print("wattprint demo: --gpus must be >= 1 and --seconds > 0", file=sys.stderr)
            return 2
        return run_demo(gpus=args.gpus, seconds=args.seconds)
    print(
        f"wattprint {args.verb}: not yet implemented: {PENDING[args.verb]}. Nothing was read or written.",
        file=sys.stderr,
    )
    return NOT_YET_EXIT


if __name__ == "__main__":
    sys.exit(main())
