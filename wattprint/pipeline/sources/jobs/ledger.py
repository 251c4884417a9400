"""A job ledger written by people or scripts: CSV or YAML with the columns

    job_id,project,phase,cluster,user,start,end,nodes,gpus[,units,unit_name]

* Header required, names case-insensitive, any order. ``job_id``, ``project``, ``start`` and ``end`` must be
  present as columns; ``phase``, ``cluster``, ``user``, ``nodes`` and ``gpus`` may be left out. An unknown or
  repeated column is an error.
* ``start``/``end``: ISO 8601 with an offset or Z (a naive time is an error); an empty ``end`` means the job
  is still running; ``end`` before ``start`` is an error.
* ``phase``: one of records.PHASES (any case); empty -> the phase rules, else ``unclassified``.
* ``project``: verbatim; empty -> the project of the first matching phase rule, else an error.
* ``cluster``: empty or missing column -> the default cluster (``--cluster`` / the config's
  ``default_cluster``); neither -> an error at that row.
* ``nodes``: a comma list or a Slurm hostlist (``gpu[01-04]``; quote it in CSV); in YAML also a list.
* ``gpus``: GPUs per node, a whole number from 0 to 1024 (common.MAX_GPUS_PER_NODE); empty -> unknown.
* ``units`` and ``unit_name`` (optional, both or neither on a row): the functional units the job produced or served,
  a positive finite number (``3.2e9``), and what a unit is, a short text (``tokens``, ``samples``; at most
  MAX_UNIT_NAME characters, no control characters). The report divides emissions by them (SCI per functional unit).
* Surrounding whitespace of every value is trimmed; everything else comes through verbatim.
* Rows that repeat a (cluster, job_id) identically are dropped (counted as ``duplicate``); rows that
  disagree are an error naming both lines.

YAML: a list of mappings with the same keys, or ``{jobs: [...]}``; every scalar is read as text
(``job_id: 0123`` stays "0123"). Errors give ``file:line`` and the item index.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping
from pathlib import Path

from ...errors import InputError
from ...records import JobRecord
from ...timeutil import parse_instant
from . import yamlmarks
from .common import (
    MAX_GPUS_PER_NODE,
    ImportResult,
    check_phase,
    classify,
    drop_duplicates,
    mapping_key,
    read_text,
    suggest,
)
from .hostlist import expand
from .rules import Rules

COLUMNS = ("job_id", "project", "phase", "cluster", "user", "start", "end", "nodes", "gpus", "units", "unit_name")
MAX_UNIT_NAME = 40
REQUIRED = ("job_id", "project", "start", "end")


def parse_csv(path: str | Path, *, rules: Rules | None = None, default_cluster: str | None = None) -> ImportResult:
    return parse_csv_text(read_text(path), str(path), rules=rules, default_cluster=default_cluster)


def parse_yaml(path: str | Path, *, rules: Rules | None = None, default_cluster: str | None = None) -> ImportResult:
    return parse_yaml_text(read_text(path), str(path), rules=rules, default_cluster=default_cluster)


def parse_csv_text(
    text: str, name: str, *, rules: Rules | None = None, default_cluster: str | None = None
) -> ImportResult:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), strict=True)
    header: list[str] | None = None
    records: list[JobRecord] = []
    prev_line = 0
    try:
        for raw in reader:
            line, prev_line = prev_line + 1, reader.line_num
            if not raw or (len(raw) == 1 and not raw[0].strip()):
                continue
            where = f"{name}:{line}"
            if header is None:
                header = _header([c.strip().lower() for c in raw], where)
                continue
            if len(raw) != len(header):
                raise InputError(where, f"expected {len(header)} fields as in the header, got {len(raw)}",
                                 'quote a value that holds commas, e.g. "gpu01,gpu02"')
            row = {col: val.strip() for col, val in zip(header, raw, strict=True)}
            records.append(_record(row, where, "csv", rules, default_cluster))
    except csv.Error as exc:
        raise InputError(f"{name}:{reader.line_num}", f"malformed CSV: {exc}",
                         "check the quoting on that line") from None
    if header is None:
        raise InputError(name, "empty ledger: no header line", f"start with the header {','.join(COLUMNS[:9])}")
    result = ImportResult()
    drop_duplicates(result, records)
    return result


def _header(cols: list[str], where: str) -> list[str]:
    seen: set[str] = set()
    for col in cols:
        if col not in COLUMNS:
            raise InputError(where, f"unknown column {col!r}{suggest(col, COLUMNS)}",
                             f"the columns are {','.join(COLUMNS)}")
        if col in seen:
            raise InputError(where, f"column {col!r} appears twice")
        seen.add(col)
    missing = [c for c in REQUIRED if c not in seen]
    if missing:
        raise InputError(where, f"missing required column(s) {', '.join(missing)}",
                         f"a ledger needs {', '.join(REQUIRED)} (end may be empty for running jobs)")
    return cols


def parse_yaml_text(
    text: str, name: str, *, rules: Rules | None = None, default_cluster: str | None = None
) -> ImportResult:
    data = yamlmarks.load(text, name, typed=False)
    data = yamlmarks.under_key(data, "jobs", name, "a YAML ledger is a list of jobs, or a mapping with only 'jobs:'")
    if data is None:
        data = yamlmarks.YList()
    if not isinstance(data, list):
        raise InputError(name, "a YAML ledger must be a list of jobs (or {jobs: [...]})")
    records = []
    for i, item in enumerate(data):
        where = yamlmarks.where(name, data, i)
        if not isinstance(item, dict):
            raise InputError(where, f"jobs[{i}] must be a mapping of {', '.join(COLUMNS)}")
        row = _yaml_row(item, i, name)
        records.append(_record(row, f"{where} (jobs[{i}])", "yaml", rules, default_cluster))
    result = ImportResult()
    drop_duplicates(result, records)
    return result


def _yaml_row(item: Mapping[object, object], i: int, name: str) -> dict[str, str]:
    row: dict[str, str] = {}
    for key, value in item.items():
        kwhere = f"{yamlmarks.where(name, item, key)} (jobs[{i}])"
        col = mapping_key(key, COLUMNS, row, kwhere)
        if value is None:
            row[col] = ""
        elif isinstance(value, list) and col == "nodes":
            if not all(isinstance(v, str) for v in value):
                raise InputError(kwhere, "nodes must be a list of host names or hostlists")
            row[col] = ",".join(v.strip() for v in value)
        elif isinstance(value, str):
            row[col] = value.strip()
        else:
            kind = "list" if isinstance(value, list) else "mapping" if isinstance(value, dict) else (
                f"!!{type(value).__name__} value (an explicit YAML tag)")
            raise InputError(kwhere, f"{col} must be a plain value, not a {kind}", "write it as plain text")
    missing = [c for c in REQUIRED if c not in row]
    if missing:
        raise InputError(f"{yamlmarks.where(name, item)} (jobs[{i}])", f"missing required key(s) {', '.join(missing)}",
                         f"each job needs {', '.join(REQUIRED)} (end may be empty for running jobs)")
    return row


def _record(
    row: dict[str, str], where: str, source: str, rules: Rules | None, default_cluster: str | None
) -> JobRecord:
    job_id = row["job_id"]
    if not job_id:
        raise InputError(where, "empty job_id")
    cluster = row.get("cluster", "") or (default_cluster or "")
    if not cluster:
        raise InputError(where, f"job {job_id!r} has no cluster",
                         "fill the cluster column, or pass --cluster NAME (or set default_cluster in the config)")
    start = parse_instant(row["start"], f"{where} start")
    end = parse_instant(row["end"], f"{where} end") if row["end"] else None
    if end is not None and end < start:
        raise InputError(where, f"job {job_id!r} ends ({row['end']}) before it starts ({row['start']})",
                         "swap or fix the times")
    explicit_phase = check_phase(row["phase"], where) if row.get("phase") else None
    user = row.get("user", "")
    fields = {"project": row["project"], "user": user, "cluster": cluster}
    phase, project = classify(explicit_phase, row["project"], fields, rules)
    if not project:
        raise InputError(where, f"job {job_id!r} has an empty project", "fill the project column (or add a phase rule "
                         "that sets project for it)")
    nodes = expand(row.get("nodes", ""), f"{where} nodes")
    units, unit_name = _units(row.get("units", ""), row.get("unit_name", ""), where)
    return JobRecord(cluster=cluster, job_id=job_id, project=project, phase=phase, start=start, end=end, user=user,
                     nodes=nodes, gpus_per_node=_gpus(row.get("gpus", ""), where), source=source, origin=where,
                     units=units, unit_name=unit_name)


def _units(text: str, unit_name: str, where: str) -> tuple[float | None, str]:
    """The job's functional units and their name: both given or both empty."""
    if not text and not unit_name:
        return None, ""
    if not unit_name:
        raise InputError(where, f"units {_short(text)!r} without a unit_name",
                         "fill unit_name with what a unit is (e.g. tokens, samples), or leave units empty")
    if not text:
        raise InputError(where, f"unit_name {_short(unit_name)!r} without units",
                         "fill units with how many the job produced (e.g. 3.2e9), or leave unit_name empty")
    if len(unit_name) > MAX_UNIT_NAME or not unit_name.isprintable():
        raise InputError(where, f"unit_name {_short(unit_name)!r} is not a short name",
                         f"name the unit in at most {MAX_UNIT_NAME} printable characters, e.g. tokens")
    units = float(text) if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text, re.ASCII) else None
    if units is None or not math.isfinite(units):
        raise InputError(where, f"units {_short(text)!r} is not a finite number",
                         "give the functional units as a plain number, e.g. 3200000000 or 3.2e9")
    if units <= 0:
        raise InputError(where, f"units {_short(text)} is not positive",
                         "give how many units the job produced (more than 0), or leave units and unit_name empty")
    return units, unit_name


def _gpus(text: str, where: str) -> int | None:
    if not text:
        return None
    if not re.fullmatch(r"[+-]?\d+", text, re.ASCII):
        raise InputError(where, f"gpus {_short(text)!r} is not a whole number", "give the GPUs per node, e.g. 8")
    digits = text.lstrip("+-").lstrip("0") or "0"
    n = (-1 if text.startswith("-") else 1) * (int(digits) if len(digits) <= 9 else 10**9)   # int() caps digits
    if n < 0:
        raise InputError(where, f"gpus {_short(text)} is negative",
                         "give the GPUs per node, e.g. 8 (0 for CPU-only jobs)")
    if n > MAX_GPUS_PER_NODE:
        raise InputError(where, f"gpus {_short(text)} is more than any node has ({MAX_GPUS_PER_NODE})",
                         "give the GPUs per node, e.g. 8, not the job's total")
    return n


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."

