"""`wattprint jobs import` and `wattprint jobs sync-kubernetes`: their flags (the verbs are in
wattprint/pipeline/verbs.py)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..verb_requests import JobsImportRequest, JobsSyncRequest
from . import flags

if TYPE_CHECKING:
    from ..settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    jobs = sub.add_parser("jobs", help="the job ledger: which job belongs to which project and phase")
    jsub = jobs.add_subparsers(dest="action", metavar="ACTION", required=True)
    ji = jsub.add_parser("import", formatter_class=fmt, help="import jobs from a file",
                         description="Import jobs (all or nothing). Re-importing a job replaces it.\n"
                         "csv/yaml columns: job_id,project,phase,cluster,user,start,end,nodes,gpus")
    ji.add_argument("path", metavar="PATH", help="the ledger file")
    ji.add_argument("--format", required=True, choices=flags.JOB_FORMATS, help="the file's format")
    ji.add_argument("--cluster", metavar="NAME",
                    help="cluster for rows that name none (sacct-json uses the job's own cluster first)")
    ji.add_argument("--timezone", metavar="IANA",
                    help="zone of sacct --parsable2 Start/End (they carry no offset), e.g. Europe/Paris")
    ji.add_argument("--rules", metavar="FILE", help="phase rules YAML (default: config phase_rules)")
    flags.common(ji)
    jk = jsub.add_parser("sync-kubernetes", formatter_class=fmt,
                         help="import pods from kube-state-metrics series in Prometheus as jobs",
                         description="Read kube_pod_info and kube_pod_labels over the window; each pod becomes a "
                         "job keyed by its uid (what the exporter reports as job_id).")
    flags.prometheus(jk)
    flags.window(jk)
    jk.add_argument("--cluster", metavar="NAME", required=True, help="cluster these pods run in")
    jk.add_argument("--step", type=int, default=JobsSyncRequest.step, metavar="SECONDS",
                    help="resolution of pod start/end (default: %(default)s)")
    jk.add_argument("--project-label", default=JobsSyncRequest.project_label, metavar="LABEL",
                    help="kube_pod_labels label holding the project (default: %(default)s; else the namespace)")
    jk.add_argument("--phase-label", default=JobsSyncRequest.phase_label, metavar="LABEL",
                    help="kube_pod_labels label holding the phase (default: %(default)s)")
    jk.add_argument("--rules", metavar="FILE", help="phase rules YAML (default: config phase_rules)")
    flags.common(jk)


def import_request(args: argparse.Namespace) -> JobsImportRequest:
    return JobsImportRequest(path=args.path, format=args.format, cluster=args.cluster, timezone=args.timezone,
                             rules=args.rules, db=args.db, quiet=args.quiet)


def sync_request(args: argparse.Namespace) -> JobsSyncRequest:
    return JobsSyncRequest(prometheus=flags.prom_source(args), start=args.start, end=args.end, cluster=args.cluster,
                           step=args.step, project_label=args.project_label, phase_label=args.phase_label,
                           rules=args.rules, db=args.db, quiet=args.quiet)


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    from ..verbs import jobs_import

    return jobs_import(import_request(args), settings)


def run_sync(args: argparse.Namespace, settings: Settings) -> int:
    from ..verbs import jobs_sync_kubernetes

    return jobs_sync_kubernetes(sync_request(args), settings)
