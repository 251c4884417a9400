"""`wattprint run`: a whole month (or any window) end to end, the steps of the monthly job in one verb.

1. ingest the window from Prometheus (`wattprint ingest`);
2. the job ledger, each source given: `jobs sync-kubernetes`, `sacct --allusers --json` + `jobs import --format
   sacct-json`, a ledger file (`jobs import`);
3. grid intensity, each source given: `intensity fetch`, an intensity file (`intensity import`);
4. one report per --format into OUT_DIR/<label>/wattprint-<label>.<ext> (`wattprint report`).

Each step is the verb's own function, called in-process with the same flags. Every step replaces what it wrote
before for the same window (ingest replaces the window, imports replace the same jobs and zone-hours, reports are
written atomically), so a failed run is completed by running it again. The first step that fails stops the run:
one line names it, and the exit status is that step's (1 upstream or database, 2 bad input). Flags are checked
before anything is read or written.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import InputError, UpstreamError, WattprintError
from .settings import Settings
from .timeutil import iso

RUN_FORMATS = ("md", "html", "json", "csv")
DEFAULT_FORMATS = ("html", "json")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Callable[..., None],
               prometheus: Callable[..., None]) -> None:
    from .cli import FETCH_SOURCES, INTENSITY_FORMATS, JOB_FORMATS
    from .config import IDLE_POLICIES

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
    prometheus(p)
    ing = p.add_argument_group("ingest (as `wattprint ingest`)")
    ing.add_argument("--step", type=int, default=None, metavar="SECONDS",
                     help="sampling step (default: config ingest.step_seconds, else 60)")
    ing.add_argument("--match", action="append", default=[], metavar="LABEL=VALUE",
                     help="only series with this label value (repeatable)")
    ing.add_argument("--power-metric", metavar="NAME",
                     help="a power gauge in watts for GPUs without an energy counter (integrated, flagged)")
    j = p.add_argument_group("job ledger (any of them, in this order; none: jobs already imported are used)")
    j.add_argument("--sync-kubernetes", metavar="CLUSTER",
                   help="import the window's pods from kube-state-metrics as jobs of CLUSTER "
                   "(`jobs sync-kubernetes --cluster CLUSTER`)")
    j.add_argument("--project-label", default="label_wattprint_io_project", metavar="LABEL",
                   help="with --sync-kubernetes: kube_pod_labels label holding the project (default: %(default)s)")
    j.add_argument("--phase-label", default="label_wattprint_io_phase", metavar="LABEL",
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
                   f"(default: {' and '.join(DEFAULT_FORMATS)})")
    r.add_argument("--layers", metavar="LIST", help="layers in the headline, as `wattprint report --layers`")
    r.add_argument("--idle-policy", choices=IDLE_POLICIES, help="as `wattprint report --idle-policy`")
    r.add_argument("--estimates", metavar="FILE", help="manual phases estimated from TDP, as `wattprint report`")
    r.add_argument("--top-jobs", type=int, default=10, metavar="N",
                   help="jobs listed in the report (default: %(default)s)")
    common(p)


def previous_month(now: datetime) -> str:
    """YYYY-MM of the UTC month before `now`'s."""
    first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def _ns(args: argparse.Namespace, **kw: Any) -> argparse.Namespace:
    """The flags one step's verb reads: the run's own (database, config, quiet, Prometheus connection, global
    flags) with the step's set over them."""
    return argparse.Namespace(**{**vars(args), **kw})


class Step:
    def __init__(self, name: str, run: Callable[[], int]) -> None:
        self.name = name
        self.run = run


def _sacct(args: argparse.Namespace, start: datetime, end: datetime, out: Path) -> None:
    """`sacct --allusers --json` over [start, end) into `out`. sacct reads --starttime/--endtime as local times:
    it runs with TZ=UTC."""
    fmt = "%Y-%m-%dT%H:%M:%S"
    cmd = ["sacct", "--allusers", "--json", "--starttime", start.strftime(fmt), "--endtime", end.strftime(fmt),
           *shlex.split(args.sacct_args)]
    try:
        with out.open("wb") as f:
            proc = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE, env={**os.environ, "TZ": "UTC"},
                                  check=False)
    except FileNotFoundError:
        raise InputError("--sacct", "sacct is not on the PATH", "run on a node with the Slurm client") from None
    if proc.returncode != 0:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise UpstreamError("sacct", f"exit status {proc.returncode} {detail[0]}".strip(),
                            "check slurmdbd and that this user may see every user's jobs")


def _check(args: argparse.Namespace) -> None:
    """What a later step would refuse, refused before the first one reads or writes anything."""
    from .config import parse_layers

    if not args.prometheus.strip():
        raise InputError("--prometheus", "empty URL", "give the Prometheus-compatible API, e.g. http://prometheus:9090")
    if bool(args.jobs_file) != bool(args.jobs_format):
        raise InputError("--jobs-format" if args.jobs_file else "--jobs-file",
                         "--jobs-file and --jobs-format go together", "e.g. --jobs-file jobs.csv --jobs-format csv")
    if bool(args.intensity_file) != bool(args.intensity_format):
        raise InputError("--intensity-format" if args.intensity_file else "--intensity-file",
                         "--intensity-file and --intensity-format go together",
                         "e.g. --intensity-file intensity.csv --intensity-format csv")
    if args.intensity_source and not args.intensity_zone:
        raise InputError("--intensity-zone", f"--intensity-source {args.intensity_source} needs a zone",
                         "e.g. --intensity-zone FR")
    if not args.intensity_source and (args.intensity_zone or args.intensity_token_file or args.intensity_base_url):
        raise InputError("--intensity-source", "--intensity-zone/-token-file/-base-url need --intensity-source",
                         "e.g. --intensity-source electricitymaps --intensity-zone FR")
    if args.intensity_token_file and args.intensity_source == "uk":
        raise InputError("--intensity-token-file", "uk takes no credential", "drop --intensity-token-file")
    for flag, path in (("--jobs-file", args.jobs_file), ("--intensity-file", args.intensity_file),
                       ("--estimates", args.estimates), ("--rules", args.rules),
                       ("--intensity-token-file", args.intensity_token_file)):
        if path and not Path(path).is_file():
            raise InputError(flag, f"no file {path}")
    if args.layers is not None:
        try:
            parse_layers(args.layers.split(","))
        except ValueError as exc:
            raise InputError("--layers", str(exc), "e.g. --layers gpu,cpu,idle,pue or --layers all") from None
    if args.top_jobs < 1:
        raise InputError("--top-jobs", f"{args.top_jobs} is not a positive number", "e.g. --top-jobs 10")
    if args.step is not None and args.step <= 0:
        raise InputError("--step", f"{args.step} is not a positive number of seconds", "e.g. --step 60")
    for m in args.match:
        key, sep, _ = m.partition("=")
        if not sep or not key:
            raise InputError("--match", f"{m!r} is not LABEL=VALUE", "e.g. --match cluster=jean-zay")
    try:
        shlex.split(args.sacct_args)
    except ValueError as exc:
        raise InputError("--sacct-args", str(exc)) from None


def run(args: argparse.Namespace, settings: Settings, now: datetime | None = None) -> int:
    from . import verbs
    from .report.window import resolve

    if not (args.month or args.start or args.end):
        args.month = previous_month(now or datetime.now(UTC))
    window = resolve(args.month, args.start, args.end)
    _check(args)
    start_s, end_s = iso(window.start), iso(window.end)
    label = window.label or f"{window.start:%Y%m%dT%H%MZ}--{window.end:%Y%m%dT%H%MZ}"
    span = {"start": start_s, "end": end_s}
    out_dir = Path(args.out_dir) / label
    formats = list(dict.fromkeys(args.formats or DEFAULT_FORMATS))

    steps = [Step("ingest", lambda: verbs.ingest(_ns(
        args, **span, step=args.step, match=args.match, power_metric=args.power_metric), settings))]
    if args.sync_kubernetes:
        steps.append(Step("jobs sync-kubernetes", lambda: verbs.jobs_sync_kubernetes(_ns(
            args, **span, cluster=args.sync_kubernetes, step=300, project_label=args.project_label,
            phase_label=args.phase_label, rules=args.rules), settings)))
    if args.sacct:
        def sacct() -> int:
            fd, tmp = tempfile.mkstemp(prefix="wattprint-sacct.", suffix=".json")
            os.close(fd)
            try:
                _sacct(args, window.start, window.end, Path(tmp))
                return verbs.jobs_import(_ns(args, path=tmp, format="sacct-json", cluster=None, timezone=None,
                                             rules=args.rules), settings)
            finally:
                Path(tmp).unlink(missing_ok=True)
        steps.append(Step("sacct + jobs import", sacct))
    if args.jobs_file:
        steps.append(Step("jobs import", lambda: verbs.jobs_import(_ns(
            args, path=args.jobs_file, format=args.jobs_format, cluster=None, timezone=args.timezone,
            rules=args.rules), settings)))
    if args.intensity_source:
        steps.append(Step("intensity fetch", lambda: verbs.intensity_fetch(_ns(
            args, **span, source=args.intensity_source, zone=args.intensity_zone,
            token_file=args.intensity_token_file, base_url=args.intensity_base_url), settings)))
    if args.intensity_file:
        steps.append(Step("intensity import", lambda: verbs.intensity_import(_ns(
            args, path=args.intensity_file, format=args.intensity_format, zone=None, basis=None), settings)))

    def reports() -> int:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError("--out-dir", f"cannot create {out_dir}: {exc.strerror}") from None
        for fmt in formats:
            rc = verbs.report(_ns(
                args, project=None, phase=[], month=window.label, start=None if window.label else start_s,
                end=None if window.label else end_s, format=fmt, out=str(out_dir / f"wattprint-{label}.{fmt}"),
                layers=args.layers, idle_policy=args.idle_policy, estimates=args.estimates,
                top_jobs=args.top_jobs), settings)
            if rc:
                return rc
        return 0
    steps.append(Step(f"report ({', '.join(formats)})", reports))

    verbs.say(args, f"wattprint run: {label} [{start_s}, {end_s}): " + ", then ".join(s.name for s in steps))
    for n, step in enumerate(steps, 1):
        verbs.say(args, f"wattprint run: step {n}/{len(steps)}: {step.name}")
        try:
            rc = step.run()
        except WattprintError as exc:
            print(f"wattprint run: step {n}/{len(steps)} ({step.name}) failed: {exc.message()}; "
                  "the steps before it are kept, re-run to complete", file=sys.stderr)
            return exc.exit_code
        if rc:
            print(f"wattprint run: step {n}/{len(steps)} ({step.name}) failed with exit status {rc}", file=sys.stderr)
            return rc
    verbs.say(args, f"wattprint run: reports for {label} in {out_dir}")
    return 0
