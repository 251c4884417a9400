"""Job ledgers: who ran what, where and when, from CSV/YAML ledgers, Slurm sacct and Kubernetes.

Every parser returns an `ImportResult` (records, skipped reason -> count, warnings) and raises
`InputError` naming the file and line (or item) and what to do. `read_jobs` picks the parser by format.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import InputError
from . import ledger, sacct
from .common import ImportResult
from .rules import Rules

FORMATS = ("csv", "yaml", "sacct-json", "sacct-parsable")

__all__ = ["FORMATS", "ImportResult", "Rules", "detect_format", "read_jobs"]


def detect_format(path: str | Path) -> str:
    """The format a file name implies (.csv, .yaml/.yml, .json -> sacct-json, .txt/.psv/.sacct -> sacct-parsable)."""
    suffix = Path(path).suffix.lower()
    fmt = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml", ".json": "sacct-json", ".txt": "sacct-parsable",
           ".psv": "sacct-parsable", ".sacct": "sacct-parsable"}.get(suffix)
    if fmt is None:
        raise InputError(str(path), f"cannot tell the ledger format from the name ({suffix or 'no suffix'})",
                         f"pass --format, one of {', '.join(FORMATS)}")
    return fmt


def read_jobs(
    path: str | Path,
    fmt: str | None = None,
    *,
    rules: Rules | None = None,
    default_cluster: str | None = None,
    timezone: str | None = None,
) -> ImportResult:
    """Parse one job file; `fmt` None -> detect_format. `timezone` only matters for sacct-parsable."""
    fmt = fmt or detect_format(path)
    default_cluster = default_cluster.strip() if default_cluster and default_cluster.strip() else None
    if fmt == "csv":
        return ledger.parse_csv(path, rules=rules, default_cluster=default_cluster)
    if fmt == "yaml":
        return ledger.parse_yaml(path, rules=rules, default_cluster=default_cluster)
    if fmt == "sacct-json":
        return sacct.parse_json(path, rules=rules, default_cluster=default_cluster)
    if fmt == "sacct-parsable":
        return sacct.parse_parsable(path, timezone=timezone, rules=rules, default_cluster=default_cluster)
    raise InputError("--format", f"unknown job format {fmt!r}", f"use one of {', '.join(FORMATS)}")

