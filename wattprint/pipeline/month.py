"""`wattprint run`: a whole month (or any window) end to end, the steps of the monthly job in one verb.

1. ingest the window from Prometheus (`wattprint ingest`);
2. the job ledger, each source given: `jobs sync-kubernetes`, `sacct --allusers --json` + `jobs import --format
   sacct-json`, a ledger file (`jobs import`);
3. grid intensity, each source given: `intensity fetch`, an intensity file (`intensity import`);
4. one report per --format into OUT_DIR/<label>/wattprint-<label>.<ext> (`wattprint report`).

Each step is the verb's own function (wattprint/pipeline/verbs.py), called in-process with its typed request made
from the run's flags. Every step replaces what it wrote
before for the same window (ingest replaces the window, imports replace the same jobs and zone-hours, reports are
written atomically), so a failed run is completed by running it again. The first step that fails stops the run:
one line names it, and the exit status is that step's (1 upstream or database, 2 bad input). Flags are checked
before anything is read or written.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import verbs
from .errors import InputError, UpstreamError, WattprintError
from .settings import Settings
from .timeutil import iso
from .verb_requests import (
    DEFAULT_RUN_FORMATS,
    CompactRequest,
    IngestRequest,
    IntensityFetchRequest,
    IntensityImportRequest,
    JobsImportRequest,
    JobsSyncRequest,
    ReportRequest,
    RunRequest,
)


def previous_month(now: datetime) -> str:
    """YYYY-MM of the UTC month before `now`'s."""
    first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=1)).strftime("%Y-%m")


class Step:
    def __init__(self, name: str, run: Callable[[], int]) -> None:
        self.name = name
        self.run = run


def _sacct(req: RunRequest, start: datetime, end: datetime, out: Path) -> None:
    """`sacct --allusers --json` over [start, end) into `out`. sacct reads --starttime/--endtime as local times:
    it runs with TZ=UTC."""
    fmt = "%Y-%m-%dT%H:%M:%S"
    cmd = ["sacct", "--allusers", "--json", "--starttime", start.strftime(fmt), "--endtime", end.strftime(fmt),
           *shlex.split(req.sacct_args)]
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


def _check(req: RunRequest) -> None:
    """What a later step would refuse, refused before the first one reads or writes anything."""
    from .config import parse_layers

    if not req.prometheus.url.strip():
        raise InputError("--prometheus", "empty URL", "give the Prometheus-compatible API, e.g. http://prometheus:9090")
    if bool(req.jobs_file) != bool(req.jobs_format):
        raise InputError("--jobs-format" if req.jobs_file else "--jobs-file",
                         "--jobs-file and --jobs-format go together", "e.g. --jobs-file jobs.csv --jobs-format csv")
    if bool(req.intensity_file) != bool(req.intensity_format):
        raise InputError("--intensity-format" if req.intensity_file else "--intensity-file",
                         "--intensity-file and --intensity-format go together",
                         "e.g. --intensity-file intensity.csv --intensity-format csv")
    if req.intensity_source and not req.intensity_zone:
        raise InputError("--intensity-zone", f"--intensity-source {req.intensity_source} needs a zone",
                         "e.g. --intensity-zone FR")
    if not req.intensity_source and (req.intensity_zone or req.intensity_token_file or req.intensity_base_url):
        raise InputError("--intensity-source", "--intensity-zone/-token-file/-base-url need --intensity-source",
                         "e.g. --intensity-source electricitymaps --intensity-zone FR")
    if req.intensity_token_file and req.intensity_source == "uk":
        raise InputError("--intensity-token-file", "uk takes no credential", "drop --intensity-token-file")
    for flag, path in (("--jobs-file", req.jobs_file), ("--intensity-file", req.intensity_file),
                       ("--estimates", req.estimates), ("--rules", req.rules),
                       ("--intensity-token-file", req.intensity_token_file)):
        if path and not Path(path).is_file():
            raise InputError(flag, f"no file {path}")
    if req.layers is not None:
        try:
            parse_layers(req.layers.split(","))
        except ValueError as exc:
            raise InputError("--layers", str(exc), "e.g. --layers gpu,cpu,idle,pue or --layers all") from None
    if req.keep_samples_days is not None:
        verbs.check_keep_samples_days(req.keep_samples_days)
    if req.top_jobs < 1:
        raise InputError("--top-jobs", f"{req.top_jobs} is not a positive number", "e.g. --top-jobs 10")
    if req.step is not None and req.step <= 0:
        raise InputError("--step", f"{req.step} is not a positive number of seconds", "e.g. --step 60")
    for m in req.match:
        key, sep, _ = m.partition("=")
        if not sep or not key:
            raise InputError("--match", f"{m!r} is not LABEL=VALUE", "e.g. --match cluster=jean-zay")
    try:
        shlex.split(req.sacct_args)
    except ValueError as exc:
        raise InputError("--sacct-req", str(exc)) from None


def run(req: RunRequest, settings: Settings, now: datetime | None = None) -> int:
    from .report.window import resolve

    month = req.month
    if not (month or req.start or req.end):
        month = previous_month(now or datetime.now(UTC))
    window = resolve(month, req.start, req.end)
    _check(req)
    start_s, end_s = iso(window.start), iso(window.end)
    label = window.label or f"{window.start:%Y%m%dT%H%MZ}--{window.end:%Y%m%dT%H%MZ}"
    out_dir = Path(req.out_dir) / label
    formats = list(dict.fromkeys(req.formats or DEFAULT_RUN_FORMATS))

    steps = [Step("ingest", lambda: verbs.ingest(IngestRequest(
        prometheus=req.prometheus, start=start_s, end=end_s, step=req.step, match=req.match,
        power_metric=req.power_metric, db=req.db, quiet=req.quiet), settings))]
    if req.sync_kubernetes:
        cluster = req.sync_kubernetes
        steps.append(Step("jobs sync-kubernetes", lambda: verbs.jobs_sync_kubernetes(JobsSyncRequest(
            prometheus=req.prometheus, start=start_s, end=end_s, cluster=cluster,
            project_label=req.project_label, phase_label=req.phase_label, rules=req.rules, db=req.db,
            quiet=req.quiet), settings)))
    if req.sacct:
        def sacct() -> int:
            fd, tmp = tempfile.mkstemp(prefix="wattprint-sacct.", suffix=".json")
            os.close(fd)
            try:
                _sacct(req, window.start, window.end, Path(tmp))
                return verbs.jobs_import(JobsImportRequest(
                    path=tmp, format="sacct-json", cluster=None, timezone=None, rules=req.rules, db=req.db,
                    quiet=req.quiet), settings)
            finally:
                Path(tmp).unlink(missing_ok=True)
        steps.append(Step("sacct + jobs import", sacct))
    if req.jobs_file and req.jobs_format:
        jobs_file, jobs_format = req.jobs_file, req.jobs_format
        steps.append(Step("jobs import", lambda: verbs.jobs_import(JobsImportRequest(
            path=jobs_file, format=jobs_format, cluster=None, timezone=req.timezone, rules=req.rules, db=req.db,
            quiet=req.quiet), settings)))
    if req.intensity_source and req.intensity_zone:
        source, zone = req.intensity_source, req.intensity_zone
        steps.append(Step("intensity fetch", lambda: verbs.intensity_fetch(IntensityFetchRequest(
            source=source, zone=zone, start=start_s, end=end_s, token_file=req.intensity_token_file,
            base_url=req.intensity_base_url, db=req.db, quiet=req.quiet), settings)))
    if req.intensity_file and req.intensity_format:
        intensity_file, intensity_format = req.intensity_file, req.intensity_format
        steps.append(Step("intensity import", lambda: verbs.intensity_import(IntensityImportRequest(
            path=intensity_file, format=intensity_format, zone=None, basis=None, db=req.db, quiet=req.quiet),
            settings)))

    def reports() -> int:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError("--out-dir", f"cannot create {out_dir}: {exc.strerror}") from None
        for fmt in formats:
            rc = verbs.report(ReportRequest(
                month=window.label, start=None if window.label else start_s, end=None if window.label else end_s,
                project=None, phases=(), format=fmt, out=str(out_dir / f"wattprint-{label}.{fmt}"),
                layers=req.layers, idle_policy=req.idle_policy, estimates=req.estimates, top_jobs=req.top_jobs,
                db=req.db, quiet=req.quiet, scope2_basis=req.scope2_basis), settings)
            if rc:
                return rc
        return 0
    steps.append(Step(f"report ({', '.join(formats)})", reports))
    if req.keep_samples_days is not None:
        keep = req.keep_samples_days
        steps.append(Step("compact", lambda: verbs.compact(CompactRequest(
            keep_samples_days=keep, db=req.db, quiet=req.quiet, now=now), settings)))

    verbs.say(req, f"wattprint run: {label} [{start_s}, {end_s}): " + ", then ".join(s.name for s in steps))
    for n, step in enumerate(steps, 1):
        verbs.say(req, f"wattprint run: step {n}/{len(steps)}: {step.name}")
        try:
            rc = step.run()
        except WattprintError as exc:
            print(f"wattprint run: step {n}/{len(steps)} ({step.name}) failed: {exc.message()}; "
                  "the steps before it are kept, re-run to complete", file=sys.stderr)
            return exc.exit_code
        if rc:
            print(f"wattprint run: step {n}/{len(steps)} ({step.name}) failed with exit status {rc}", file=sys.stderr)
            return rc
    verbs.say(req, f"wattprint run: reports for {label} in {out_dir}")
    return 0
