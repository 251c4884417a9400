"""`wattprint report`: its flags (the verb is wattprint/pipeline/report/run.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..verb_requests import IDLE_POLICIES, REPORT_FORMATS, SCOPE2_BASES, ReportRequest
from . import flags

if TYPE_CHECKING:
    from ..settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="carbon report for a project (phase blocks like a model card's) or all projects, for a month or window",
        description="Report measured energy and emissions over a UTC window. With --project: one block per phase "
        "(model-card style), the accounting layers, data quality and what-if. Without: the monthly report "
        "across projects for ESG (per project, phase and cluster, top jobs, change against the previous period).",
    )
    p.add_argument("--project", metavar="NAME", help="the project (default: all projects)")
    p.add_argument("--phase", action="append", default=[], metavar="NAME",
                   help="only this phase (repeatable; default: every phase)")
    p.add_argument("--month", metavar="YYYY-MM", help="a calendar month (UTC)")
    p.add_argument("--start", metavar="ISO8601", help="window start on a whole UTC hour, e.g. 2026-10-01T00:00:00Z")
    p.add_argument("--end", metavar="ISO8601", help="window end (exclusive) on a whole UTC hour")
    p.add_argument("--format", choices=REPORT_FORMATS, default="md",
                   help="md (model-card Markdown), html (self-contained page with charts), json (the documented "
                   "contract), csv (every number), model-card (write or update co2_eq_emissions in --out's YAML "
                   "front matter) (default: %(default)s)")
    p.add_argument("--out", metavar="PATH", help="write here (default: standard output; model-card: the card, "
                   "e.g. README.md, created if missing)")
    p.add_argument("--layers", metavar="LIST",
                   help="layers in the headline, comma-separated: gpu,cpu,node,idle,pue,embodied or all "
                   "(default: config report.layers, else gpu,cpu,idle,pue; node, the BMC's node residual, is "
                   "listed where there is BMC data but not in the default)")
    p.add_argument("--idle-policy", choices=IDLE_POLICIES,
                   help="pro-rata: share idle GPU energy by GPU-hours and host idle energy by CPU-hours per "
                   "cluster-hour; separate: report it per cluster only (default: config report.idle_policy, else "
                   "pro-rata)")
    p.add_argument("--scope2-basis", choices=SCOPE2_BASES,
                   help="the headline's Scope 2 method: location (grid average) or market (contractual instruments, "
                   "residual mix); every headline figure follows it (total, phases, projects, top jobs, days, "
                   "bands, model card), the layers and what-ifs stay location-based; both are always shown "
                   "(default: config report.scope2_basis, else location)")
    p.add_argument("--estimates", metavar="FILE",
                   help="YAML of manual phases estimated from TDP (see `wattprint estimate`), merged and labelled")
    p.add_argument("--top-jobs", type=int, default=10, metavar="N",
                   help="jobs listed in the all-projects report (default: %(default)s)")
    p.add_argument("--time-shift-slack", type=int, default=24, metavar="HOURS",
                   help="the time-shift what-if: each phase's and top job's hourly energy started up to HOURS later, "
                   "at its cleanest start (0-168; 0: off; default: %(default)s)")
    flags.common(p)


def request(args: argparse.Namespace) -> ReportRequest:
    return ReportRequest(
        month=args.month, start=args.start, end=args.end, project=args.project, phases=tuple(args.phase),
        format=args.format, out=args.out, layers=args.layers, idle_policy=args.idle_policy, estimates=args.estimates,
        top_jobs=args.top_jobs, time_shift_slack=args.time_shift_slack, db=args.db, quiet=args.quiet,
        scope2_basis=args.scope2_basis)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..verbs import report

    return report(request(args), settings)
