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
