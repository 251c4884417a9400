"""`wattprint demo`: its flags, and its two handlers (the demos are wattprint/pipeline/demo.py)."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser(
        "demo", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="build a month of carbon reports for a simulated two-cluster H100 fleet (no GPU, no server needed)",
        description="Simulate a month (2026-10) of two 16-GPU H100 clusters (power from the real H100 trace, host CPU "
        "energy from simulated RAPL counters with the jobs' CPU time, a job ledger of three projects, hourly grid "
        "intensity per zone), run it through the real ingest, imports, model "
        "and reports, and write the report set (Markdown, HTML, JSON, CSV, model card) with its inputs and DuckDB "
        "file into --out. Deterministic for a seed. With --exporter: run a replay exporter instead and show the "
        "energy it measures per GPU, job and idle.",
    )
    demo.add_argument("--out", metavar="DIR", default="wattprint-demo",
                      help="folder for the files (default: %(default)s); re-running replaces the files a previous "
                      "demo wrote there, and a non-empty folder it did not write is refused")
    demo.add_argument("--seed", type=int, default=0, metavar="N",
                      help="seed of the simulated fleet (default: %(default)s)")
    demo.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    # `--exporter` picks the demo's other handler: VERBS[("demo", "exporter")]
    demo.add_argument("--exporter", action="store_const", const="exporter", dest="action",
                      help="instead: run a replay exporter (real H100 trace) with jobs on its virtual GPUs, "
                      "scrape it and show the energy it measures")
    demo.add_argument("--gpus", type=int, default=4, help="with --exporter: virtual GPUs (default: %(default)s)")
    demo.add_argument("--seconds", type=float, default=6.0,
                      help="with --exporter: how long to measure (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """`wattprint demo`."""
    from ..demo import run_demo

    return run_demo(out=args.out, seed=args.seed, quiet=args.quiet)


def run_exporter(args: argparse.Namespace) -> int:
    """`wattprint demo --exporter`."""
    if args.gpus < 1 or args.seconds <= 0:
        print("wattprint demo: --gpus must be >= 1 and --seconds > 0", file=sys.stderr)
        return 2
    from ..demo import run_exporter_demo

    return run_exporter_demo(gpus=args.gpus, seconds=args.seconds)
