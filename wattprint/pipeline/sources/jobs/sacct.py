"""Slurm accounting: ``sacct --json`` and ``sacct --parsable2`` output, allocations only.

JSON: both the Slurm 21.08-22.05 layout (openapi dbv0.0.37/38: ``state.current`` a string, plain ints)
and the Slurm 23.02+ data_parser layout (v0.0.39-v0.0.4x: ``state.current`` a list, numbers possibly
``{"set": true, "infinite": false, "number": N}``, ``wckey`` ``{"wckey": .., "flags": [..]}``,
``comment`` ``{"job": .., "administrator": .., "system": ..}``). ``job_id`` is Slurm's raw job id, the id
the exporter reads from the job's cgroup, so an array task is its own raw id (not ``123_4``).

Parsable: ``sacct --parsable2`` (or ``--parsable``: a trailing ``|`` is fine) with a header line; columns
in any order, names case-insensitive; JobID, Start and End required; used if present: JobIDRaw, JobName,
Account, WCKey, Comment, User, NodeList, AllocTRES, State, Cluster, Elapsed; others are ignored with a
warning. Job steps (``123.batch``, ``123.0``, ``123.extern``) are skipped: only allocations are jobs.
The job id is JobIDRaw when that column is there (what the exporter labels energy with), else JobID
verbatim (an array task keeps ``123_4``; a warning says to add JobIDRaw so its energy joins).

Times: sacct prints Start/End in the local time of the machine it ran on, without an offset, so
`timezone` (an IANA name such as Europe/Paris) is required when such a time appears; a time during a
DST change is read with the earlier offset and counted in a warning. Epoch seconds
(``SLURM_TIME_FORMAT=%s``) and times with an offset (``SLURM_TIME_FORMAT=%FT%T%z``) need no timezone.
An End of ``Unknown``/``None``/empty/0 is a running job; a job that never started (PENDING, or Start
Unknown/0) is skipped and counted. A finished job (e.g. NODE_FAIL) without an end gets start + elapsed.

Per job: project = the project of the first matching phase rule, else Account (no account and no rule
is an error). Phase = a hint in WCKey (``phase=x`` or a bare phase word) or Comment (``phase=x``), else
the rules, else ``unclassified``; a hint naming no known phase is ignored with a warning. GPUs per
node = the allocated ``gres/gpu`` count (the untyped total when Slurm lists both ``gres/gpu`` and
``gres/gpu:h100``, else the sum of the typed ones) divided by the node count, rounded up with a warning
when uneven; no GPU TRES -> 0; a negative count or more than 1024 per node is an error. Corrupt records
(an end before the start, a negative or out-of-range epoch time or elapsed, a job_id that is not a positive
whole number, an object where a name belongs) are errors naming the job. A job id listed more than
once (requeues, ``sacct -D``) becomes one record spanning all its runs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...errors import InputError
from ...records import PHASES, JobRecord
from ...timeutil import from_epoch, parse_instant, plus, to_utc
from .._text import check_no_surrogates
from .common import MAX_GPUS_PER_NODE, ImportResult, classify, merge_requeues, read_text, valid_phase
from .hostlist import expand
from .rules import Rules, phase_hint

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                      "DEADLINE", "PREEMPTED", "REVOKED"})
NO_TIME = frozenset({"", "unknown", "none", "0", "n/a"})
NO_NODES = frozenset({"", "none assigned", "(null)", "none"})
PARSABLE_COLUMNS = ("jobid", "jobidraw", "jobname", "account", "wckey", "comment", "user", "start", "end",
                    "nodelist", "alloctres", "state", "cluster", "elapsed")
_STEP = re.compile(r"^[^.]+\.")
_ELAPSED = re.compile(r"^(?:(\d{1,6})-)?(?:(\d{1,9}):)?(\d{1,9}):(\d{1,9})$", re.ASCII)
MAX_ELAPSED_S = 100 * 366 * 86400   # a century: anything longer is a corrupt record


@dataclass
class _Job:
    where: str
    job_id: str
    start: datetime
    end: datetime | None
    cluster: str = ""
    name: str = ""
    account: str = ""
    user: str = ""
    wckey: str = ""
    comment: str = ""
    nodes: str = ""
    gpus: int = 0


# -- JSON ------------------------------------------------------------------------------------------

def parse_json(path: str | Path, *, rules: Rules | None = None, default_cluster: str | None = None) -> ImportResult:
    return parse_json_text(read_text(path), str(path), rules=rules, default_cluster=default_cluster)


def parse_json_text(
    text: str, name: str, *, rules: Rules | None = None, default_cluster: str | None = None
) -> ImportResult:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{name}:{exc.lineno}", f"invalid JSON: {exc.msg}",
                         "pass the output of sacct --json") from None
    except RecursionError:
        raise InputError(name, "invalid JSON: nested too deeply", "pass the output of sacct --json") from None
    except ValueError as exc:   # e.g. an integer of more than 4300 digits
        raise InputError(name, f"invalid JSON: {exc}", "pass the output of sacct --json") from None
    check_no_surrogates(data, name)
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise InputError(name, "not sacct --json output: no top-level 'jobs' list", "run sacct --json ... > file")
    result = ImportResult()
    if not isinstance(data.get("errors") or [], list):
        raise InputError(f"{name} errors", "not sacct --json output: 'errors' is not a list",
                         "run sacct --json ... > file")
    for err in data.get("errors") or []:
        result.warn(f"{name}: sacct reported an error: {_text(err.get('error') if isinstance(err, dict) else err)!r}")
    jobs: list[_Job] = []
    for i, raw in enumerate(data["jobs"]):
        where = f"{name} jobs[{i}]"
        if not isinstance(raw, dict):
            raise InputError(where, "a job must be a JSON object")
        job = _json_job(raw, where, result)
        if job is not None:
            jobs.append(job)
    merge_requeues(result, [_record(j, "sacct-json", rules, default_cluster, result) for j in jobs])
    return result


def _json_job(raw: Mapping[str, Any], where: str, result: ImportResult) -> _Job | None:
    jid = _num(raw.get("job_id"))
    if jid is None:
        raise InputError(where, "job without a job_id", "pass unmodified sacct --json output")
    if jid < 1 or jid != int(jid):
        raise InputError(f"{where}.job_id", f"job_id {jid:g} is not a positive whole number",
                         "pass unmodified sacct --json output")
    job_id = str(int(jid))
    where = f"{where} (job {job_id})"
    states = _states(raw.get("state"))
    time = _obj(raw.get("time"))
    start_n = _num(time.get("start"))
    if "PENDING" in states:
        result.skip("pending")
        return None
    if not start_n:
        result.skip("never_started")
        return None
    start = _epoch(start_n, f"{where} time.start")
    end_n = _num(time.get("end"))
    end = _epoch(end_n, f"{where} time.end") if end_n else None
    if end is None and states & TERMINAL:
        end = _end_from_elapsed(start, _num(time.get("elapsed")), states, where, result)
    if end is not None and end < start:
        raise InputError(where, f"job {job_id} ends ({end.isoformat()}) before it starts ({start.isoformat()})",
                         "pass unmodified sacct --json output")
    assoc = _obj(raw.get("association"))
    tres = _obj(raw.get("tres"))
    allocated = tres.get("allocated") or []
    if not isinstance(allocated, list):
        raise InputError(f"{where} tres.allocated", f"expected a list, got a JSON {type(allocated).__name__}",
                         "pass unmodified sacct --json output")
    gpus = _gpus([(_text(t.get("type")), _text(t.get("name")), _num(t.get("count")))
                  for t in allocated if isinstance(t, dict)])
    wckey = raw.get("wckey")
    comment = raw.get("comment")
    return _Job(
        where=where, job_id=job_id, start=start, end=end,
        cluster=_str(raw, "cluster", where) or _str(assoc, "cluster", f"{where} association"),
        name=_str(raw, "name", where),
        account=_str(raw, "account", where) or _str(assoc, "account", f"{where} association"),
        user=_str(raw, "user", where) or _str(assoc, "user", f"{where} association"),
        wckey=_str(wckey, "wckey", f"{where} wckey") if isinstance(wckey, dict) else _str(raw, "wckey", where),
        comment=_str(comment, "job", f"{where} comment") if isinstance(comment, dict) else _str(raw, "comment", where),
        nodes=_str(raw, "nodes", where), gpus=gpus,
    )


def _epoch(seconds: float, where: str) -> datetime:
    if seconds < 0:
        raise InputError(where, f"negative epoch time {seconds:g}", "pass unmodified sacct --json output")
    return from_epoch(seconds, where)


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    """A text field: a string (or a number, as text), "" when absent or null; a list or object is an error."""
    value = obj.get(key)
    if isinstance(value, dict | list | bool):
        raise InputError(f"{where}.{key}", f"expected text, got a JSON {type(value).__name__} {_short(value)}",
                         "pass unmodified sacct --json output")
    return _text(value)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> float | None:
    """A number from a plain int/float/str or a data_parser {set, infinite, number} object; None if unset."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite"):
            return None
        value = value.get("number")
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        try:
            f = float(value)
        except OverflowError:   # an integer beyond any float
            return None
        return f if math.isfinite(f) else None
    if isinstance(value, str):
        try:
            f = float(value.strip())
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _states(value: Any) -> frozenset[str]:
    current = value.get("current") if isinstance(value, dict) else value
    items = current if isinstance(current, list) else [current]
    return frozenset(_text(s).split(" ")[0].upper() for s in items if _text(s))


def _end_from_elapsed(start: datetime, elapsed: float | None, states: frozenset[str], where: str,
                      result: ImportResult) -> datetime | None:
    state = "/".join(sorted(states & TERMINAL))
    if elapsed:
        if not 0 < elapsed <= MAX_ELAPSED_S:
            raise InputError(where, f"elapsed {elapsed:g} s is not a job's run time", "check the Elapsed field")
        result.warn(f"{where}: state {state} but no end time; end taken as start + elapsed ({int(elapsed)} s)")
        return plus(start, timedelta(seconds=elapsed), where)
    result.warn(f"{where}: state {state} but no end time nor elapsed; treated as still running")
    return None


def _gpus(tres: list[tuple[str, str, float | None]]) -> int:
    untyped = None
    typed = 0.0
    for typ, name, count in tres:
        if typ.lower() != "gres" or count is None:
            continue
        gname = name.lower()
        if gname == "gpu":
            untyped = count
        elif gname.startswith("gpu:"):
            typed += count
    return int(untyped if untyped is not None else typed)


# -- parsable ---------------------------------------------------------------------------------------

def parse_parsable(
    path: str | Path, *, timezone: str | None = None, rules: Rules | None = None, default_cluster: str | None = None
) -> ImportResult:
    return parse_parsable_text(read_text(path), str(path), timezone=timezone, rules=rules,
                               default_cluster=default_cluster)


def parse_parsable_text(
    text: str, name: str, *, timezone: str | None = None, rules: Rules | None = None,
    default_cluster: str | None = None,
) -> ImportResult:
    tz = _zone(timezone) if timezone else None
    result = ImportResult()
    clock = _Clock(tz, timezone or "")
    header: list[str] | None = None
    trailing = False
    jobs: list[_Job] = []
    arrays = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        if header is None:
            header, trailing = _parsable_header(line, where, result)
            continue
        raw = line[:-1] if trailing and line.endswith("|") else line
        values = raw.split("|")
        if len(values) != len(header):
            raise InputError(where, f"expected {len(header)} '|'-separated fields as in the header, got {len(values)}",
                             "a field (often Comment) may contain '|': drop that column or use sacct --json")
        row = dict(zip(header, (v.strip() for v in values), strict=True))
        job = _parsable_job(row, where, clock, result)
        if job is not None:
            if "jobidraw" not in row and "_" in job.job_id:
                arrays += 1
            jobs.append(job)
    if header is None:
        raise InputError(name, "empty sacct output: no header line", "run sacct --parsable2 without --noheader")
    if clock.dst:
        result.warn(f"{name}: {clock.dst} time(s) fall in a daylight-saving change in {timezone}; read with the "
                    "earlier offset (up to an hour off). SLURM_TIME_FORMAT=%s avoids this")
    if arrays:
        result.warn(f"{name}: {arrays} array task id(s) like 123_4 kept as is; the exporter labels their energy "
                    "with the raw job id: add JobIDRaw to sacct --format so they join")
    merge_requeues(result, [_record(j, "sacct-parsable", rules, default_cluster, result) for j in jobs])
    return result


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):     # OSError: a name too long for a file name
        raise InputError("--timezone", f"{name!r} is not an IANA time zone name",
                         "use the cluster's zone, e.g. Europe/Paris or America/New_York") from None


def _parsable_header(line: str, where: str, result: ImportResult) -> tuple[list[str], bool]:
    cols = [c.strip().lower() for c in line.split("|")]
    trailing = len(cols) > 1 and cols[-1] == ""
    if trailing:
        cols = cols[:-1]
    unknown = [c for c in cols if c not in PARSABLE_COLUMNS]
    if any(not c for c in cols) or len(set(cols)) != len(cols):
        raise InputError(where, "header has an empty or repeated column name", "run sacct --parsable2 --format=...")
    if unknown:
        result.warn(f"{where}: column(s) {', '.join(map(repr, unknown))} ignored")
    missing = [c for c in ("jobid", "start", "end") if c not in cols]
    if missing:
        raise InputError(where, f"sacct output lacks column(s) {', '.join(missing)}",
                         "run sacct --parsable2 --format=JobID,JobIDRaw,JobName,Account,WCKey,Comment,User,Start,End,"
                         "NodeList,AllocTRES,State")
    return cols, trailing


class _Clock:
    """Start/End text -> aware UTC; local times need the zone, and DST folds are counted."""

    def __init__(self, tz: ZoneInfo | None, tzname: str) -> None:
        self.tz = tz
        self.tzname = tzname
        self.dst = 0

    def read(self, text: str, where: str) -> datetime | None:
        s = text.strip()
        if s.lower() in NO_TIME:
            return None
        if s.isdigit():
            return parse_instant(s, where, allow_epoch=True)
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise InputError(where, f"{s!r} is not a time sacct prints",
                             "use sacct's default format, or SLURM_TIME_FORMAT=%s") from None
        if dt.tzinfo is not None:
            return to_utc(dt, where, s)
        if self.tz is None:
            raise InputError(where, f"time {s!r} has no offset: sacct prints the local time of where it ran",
                             "pass --timezone with the cluster's IANA zone (e.g. Europe/Paris), or re-run sacct with "
                             "SLURM_TIME_FORMAT=%s (epoch seconds) or with TZ=UTC and --timezone UTC")
        a, b = dt.replace(tzinfo=self.tz, fold=0), dt.replace(tzinfo=self.tz, fold=1)
        try:
            if a.utcoffset() != b.utcoffset():
                self.dst += 1
        except (OverflowError, ValueError):
            raise InputError(where, f"time {s!r} is out of range in {self.tzname}", "check the date") from None
        return to_utc(a, where, s)


def _parsable_job(row: dict[str, str], where: str, clock: _Clock, result: ImportResult) -> _Job | None:
    display = row["jobid"]
    job_id = row.get("jobidraw") or display
    if not job_id:
        raise InputError(where, "empty JobID")
    if _STEP.match(display) or _STEP.match(job_id):
        result.skip("steps")
        return None
    states = _states(row.get("state", ""))
    if "PENDING" in states:
        result.skip("pending")
        return None
    start = clock.read(row["start"], f"{where} Start")
    if start is None:
        result.skip("never_started")
        return None
    end = clock.read(row["end"], f"{where} End")
    if end is None and states & TERMINAL:
        end = _end_from_elapsed(start, _elapsed(row.get("elapsed", "")), states, f"{where} (job {job_id!r})", result)
    if end is not None and end < start:
        raise InputError(where, f"job {job_id!r} ends ({row['end']!r}) before it starts ({row['start']!r})",
                         "check --timezone (or use SLURM_TIME_FORMAT=%s)")
    return _Job(where=where, job_id=job_id, start=start, end=end, cluster=row.get("cluster", ""),
                name=row.get("jobname", ""), account=row.get("account", ""), user=row.get("user", ""),
                wckey=row.get("wckey", ""), comment=row.get("comment", ""), nodes=row.get("nodelist", ""),
                gpus=_gpus(_tres_text(row.get("alloctres", ""))))


def _elapsed(text: str) -> float | None:
    m = _ELAPSED.match(text.strip())
    if not m:
        return None
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return float(((d * 24 + h) * 60 + mi) * 60 + s)


def _tres_text(text: str) -> list[tuple[str, str, float | None]]:
    out: list[tuple[str, str, float | None]] = []
    for part in text.split(","):
        key, sep, count = part.partition("=")
        if not sep:
            continue
        typ, _, tname = key.strip().partition("/")
        out.append((typ, tname, _num(count)))
    return out


# -- shared ------------------------------------------------------------------------------------------

def _record(job: _Job, source: str, rules: Rules | None, default_cluster: str | None,
            result: ImportResult) -> JobRecord:
    cluster = job.cluster or (default_cluster or "")
    if not cluster:
        raise InputError(job.where, f"job {job.job_id!r} has no cluster",
                         "add Cluster to sacct --format, or pass --cluster NAME (or default_cluster in the config)")
    hint = _hint(job, result)
    fields = {"name": job.name, "account": job.account, "user": job.user, "wckey": job.wckey,
              "comment": job.comment, "cluster": cluster, "project": job.account}
    phase, project = classify(hint, None, fields, rules, fallback_project=job.account)
    if not project:
        raise InputError(job.where, f"job {job.job_id!r} has no account and no phase rule gives it a project",
                         "add Account to sacct --format, or a rule with 'project:' that matches it")
    nodes = () if job.nodes.lower() in NO_NODES else expand(job.nodes, f"{job.where} nodes")
    if job.gpus < 0:
        raise InputError(job.where, f"job {job.job_id!r} has {job.gpus} allocated GPUs", "check AllocTRES / tres")
    per_node = job.gpus
    if nodes and job.gpus:
        per_node = -(-job.gpus // len(nodes))
        if job.gpus % len(nodes):
            result.warn(f"{job.where}: {job.gpus} GPUs over {len(nodes)} nodes is uneven; {per_node} per node assumed")
    if per_node > MAX_GPUS_PER_NODE:
        raise InputError(job.where, f"job {job.job_id!r} has {per_node} GPUs per node (over {MAX_GPUS_PER_NODE})",
                         "check AllocTRES / tres and NodeList")
    return JobRecord(cluster=cluster, job_id=job.job_id, project=project, phase=phase, start=job.start, end=job.end,
                     user=job.user, name=job.name, account=job.account, nodes=nodes, gpus_per_node=per_node,
                     source=source, origin=job.where)


def _hint(job: _Job, result: ImportResult) -> str | None:
    for what, text, bare in (("WCKey", job.wckey, True), ("Comment", job.comment, False)):
        hint = phase_hint(text, bare=bare)
        if hint is None:
            continue
        phase = valid_phase(hint)
        if phase is not None:
            return phase
        result.warn(f"{job.where}: phase {hint!r} in {what} is not one of {', '.join(PHASES)}; ignored")
    return None
