"""`wattprint run`: its flags (the verb is wattprint/pipeline/month.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..verb_requests import DEFAULT_RUN_FORMATS, IDLE_POLICIES, RUN_FORMATS, SCOPE2_BASES, JobsSyncRequest, RunRequest
from . import flags
from .flags import FETCH_SOURCES, INTENSITY_FORMATS, JOB_FORMATS

if TYPE_CHECKING:
    from ..settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="a whole month (or window) end to end: ingest, job ledger, intensity, then the report set",
        description="Run the monthly job in one command: `ingest` the window from Prometheus, import the job ledger "
        "(--sync-kubernetes, --sacct, --jobs-file), fetch or import grid intensity (--intensity-source, "
        "--intensity-file), then write one all-projects report per --format to "
        "OUT_DIR/<label>/wattprint-<label>.<format> (<label>: YYYY-MM, or START--END for a window). Each step is "
        "the verb of the same name with the same flags; each replaces what it wrote before, so re-running a month "
        "completes or repeats it. The first failing step stops the run, is named on one line, and gives the exit "
        "status (1 upstream or database, 2 bad input). Without --month or --start/--end: the previous UTC month.",
    )
    w = p.add_argument_group("window (default: the previous UTC month)")
    w.add_argument("--month", metavar="YYYY-MM", help="a calendar month (UTC)")
    w.add_argument("--start", metavar="ISO8601", help="window start on a whole UTC hour, e.g. 2024-03-01T00:00:00Z")
    w.add_argument("--end", metavar="ISO8601", help="window end (exclusive) on a whole UTC hour")
    flags.prometheus(p)
    flags.ingest_selection(p.add_argument_group("ingest (as `wattprint ingest`)"))
    j = p.add_argument_group("job ledger (any of them, in this order; none: jobs already imported are used)")
    j.add_argument("--sync-kubernetes", metavar="CLUSTER",
                   help="import the window's pods from kube-state-metrics as jobs of CLUSTER "
                   "(`jobs sync-kubernetes --cluster CLUSTER`)")
    j.add_argument("--project-label", default=JobsSyncRequest.project_label, metavar="LABEL",
                   help="with --sync-kubernetes: kube_pod_labels label holding the project (default: %(default)s)")
    j.add_argument("--phase-label", default=JobsSyncRequest.phase_label, metavar="LABEL",
                   help="with --sync-kubernetes: kube_pod_labels label holding the phase (default: %(default)s)")
    j.add_argument("--sacct", action="store_true",
                   help="import the window's Slurm jobs: `sacct --allusers --json` over the window (TZ=UTC), then "
                   "`jobs import --format sacct-json`")
    j.add_argument("--sacct-args", default="", metavar="ARGS",
                   help="more sacct flags, split like a shell would, e.g. --sacct-args=--clusters=jean-zay")
    j.add_argument("--jobs-file", metavar="PATH", help="import this ledger file (`jobs import PATH`)")
    j.add_argument("--jobs-format", choices=JOB_FORMATS, help="with --jobs-file: its format")
    j.add_argument("--timezone", metavar="IANA", help="with --jobs-format sacct-parsable: the zone of Start/End")
    j.add_argument("--rules", metavar="FILE", help="phase rules YAML (default: config phase_rules)")
    i = p.add_argument_group("grid intensity (optional; without it the reports use what is stored, else annual)")
    i.add_argument("--intensity-source", choices=FETCH_SOURCES,
                   help="fetch the window's hourly intensity from this API (`intensity fetch`)")
    i.add_argument("--intensity-zone", metavar="ZONE", help="the zone to fetch (required with --intensity-source)")
    i.add_argument("--intensity-token-file", metavar="FILE",
                   help="the Electricity Maps token or WattTime password file (`intensity fetch --token-file`)")
    i.add_argument("--intensity-base-url", metavar="URL", help="API base URL (a mirror or proxy)")
    i.add_argument("--intensity-file", metavar="PATH", help="import this intensity file (`intensity import PATH`)")
    i.add_argument("--intensity-format", choices=INTENSITY_FORMATS, help="with --intensity-file: its format")
    r = p.add_argument_group("reports (as `wattprint report`, all projects)")
    r.add_argument("--out-dir", default="reports", metavar="DIR",
                   help="reports go to DIR/<label>/wattprint-<label>.<format> (default: %(default)s)")
    r.add_argument("--format", action="append", choices=RUN_FORMATS, dest="formats", metavar="FORMAT",
                   help=f"a report format, repeatable: {', '.join(RUN_FORMATS)} "
                   f"(default: {' and '.join(DEFAULT_RUN_FORMATS)})")
    r.add_argument("--layers", metavar="LIST", help="layers in the headline, as `wattprint report --layers`")
    r.add_argument("--idle-policy", choices=IDLE_POLICIES, help="as `wattprint report --idle-policy`")
    r.add_argument("--scope2-basis", choices=SCOPE2_BASES, help="the headline's Scope 2 method, as `wattprint report "
                   "--scope2-basis`")
    r.add_argument("--estimates", metavar="FILE", help="manual phases estimated from TDP, as `wattprint report`")
    r.add_argument("--top-jobs", type=int, default=10, metavar="N",
                   help="jobs listed in the report (default: %(default)s)")
    k = p.add_argument_group("retention (optional)")
    k.add_argument("--keep-samples-days", type=int, metavar="DAYS",
                   help="after the reports, close the months that ended more than DAYS days ago (`wattprint compact "
                   "--keep-samples-days DAYS`): their samples are deleted, their results kept")
    flags.common(p)


def request(args: argparse.Namespace) -> RunRequest:
    return RunRequest(
        month=args.month, start=args.start, end=args.end, prometheus=flags.prom_source(args), step=args.step,
        match=tuple(args.match), power_metric=args.power_metric, sync_kubernetes=args.sync_kubernetes,
        project_label=args.project_label, phase_label=args.phase_label, sacct=args.sacct, sacct_args=args.sacct_args,
        jobs_file=args.jobs_file, jobs_format=args.jobs_format, timezone=args.timezone, rules=args.rules,
        intensity_source=args.intensity_source, intensity_zone=args.intensity_zone,
        intensity_token_file=args.intensity_token_file, intensity_base_url=args.intensity_base_url,
        intensity_file=args.intensity_file, intensity_format=args.intensity_format, out_dir=args.out_dir,
        formats=tuple(args.formats or ()), layers=args.layers, idle_policy=args.idle_policy, estimates=args.estimates,
        top_jobs=args.top_jobs, keep_samples_days=args.keep_samples_days, db=args.db, quiet=args.quiet,
        scope2_basis=args.scope2_basis)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from ..month import run as run_month

    return run_month(request(args), settings)
