"""What every job parser returns, and the rules they share (phase names, duplicates, projects)."""

from __future__ import annotations

import difflib
from collections.abc import Container
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import InputError
from ...files import MAX_JOB_FILE_BYTES, read_regular
from ...records import PHASES, JobRecord

if TYPE_CHECKING:
    from .rules import Rules

UNCLASSIFIED = "unclassified"
MAX_GPUS_PER_NODE = 1024   # far above any machine (8-16 today); catches typos and corrupt counts
_COMPARED = tuple(f.name for f in fields(JobRecord) if f.name not in ("origin",))


@dataclass
class ImportResult:
    """Jobs read from one input, the jobs left out (reason -> count) and things the user should know."""

    records: list[JobRecord] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def read_text(path: str | Path) -> str:
    """A UTF-8 file's text (a BOM is dropped); InputError naming the file otherwise."""
    try:
        return read_regular(path, MAX_JOB_FILE_BYTES, what="job file").decode("utf-8-sig")
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"not UTF-8 text (byte {exc.start})", "save it as UTF-8") from None


def suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """' (did you mean 'x'?)' or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    if not close and len(word) >= 3:
        close = [c for c in choices if c.startswith(word) or word in c][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def mapping_key(key: object, allowed: tuple[str, ...] | list[str], seen: Container[str], where: str) -> str:
    """A YAML mapping key, trimmed and lower-cased; InputError when unknown or already given in another case."""
    k = str(key).strip().lower()
    if k not in allowed:
        raise InputError(where, f"unknown key {str(key)!r}{suggest(k, allowed)}", f"the keys are {', '.join(allowed)}")
    if k in seen:
        raise InputError(where, f"key {k!r} appears twice (in another case)")
    return k


def check_phase(value: str, where: str, what: str = "phase") -> str:
    """A phase name, case-insensitive, as its canonical lower-case form; InputError otherwise."""
    phase = value.strip().lower()
    if phase not in PHASES:
        raise InputError(where, f"{what} {value!r} is not a known phase{suggest(phase, PHASES)}",
                         f"use one of {', '.join(PHASES)}, or leave it empty")
    return phase


def valid_phase(value: str | None) -> str | None:
    """The canonical phase, or None when value is empty or not a phase (callers warn)."""
    if not value:
        return None
    phase = value.strip().lower()
    return phase if phase in PHASES else None


def classify(
    explicit_phase: str | None,
    explicit_project: str | None,
    fields_: dict[str, str],
    rules: Rules | None,
    fallback_project: str = "",
) -> tuple[str, str]:
    """(phase, project): an explicit value wins, then the first matching rule, then the fallback."""
    rule_phase, rule_project = rules.apply(fields_) if rules is not None else (None, None)
    phase = explicit_phase or rule_phase or UNCLASSIFIED
    project = explicit_project or rule_project or fallback_project
    return phase, project


def _same(a: JobRecord, b: JobRecord) -> list[str]:
    return [name for name in _COMPARED if getattr(a, name) != getattr(b, name)]


def drop_duplicates(result: ImportResult, records: list[JobRecord]) -> None:
    """Ledgers: identical rows for one (cluster, job_id) are dropped; differing rows are an error naming both."""
    seen: dict[tuple[str, str], JobRecord] = {}
    for rec in records:
        key = (rec.cluster, rec.job_id)
        first = seen.get(key)
        if first is None:
            seen[key] = rec
            result.records.append(rec)
            continue
        diff = _same(first, rec)
        if not diff:
            result.skip("duplicate")
            continue
        detail = ", ".join(f"{n} {getattr(first, n)!r} vs {getattr(rec, n)!r}" for n in diff[:3])
        raise InputError(rec.origin, f"job {rec.job_id!r} on cluster {rec.cluster!r} conflicts with {first.origin}: "
                         f"{detail}", "keep one row per job (cluster + job_id), or fix the one that is wrong")


def merge_requeues(result: ImportResult, records: list[JobRecord]) -> None:
    """Slurm: a requeued job is listed once per run under one id; merge into one window over all runs."""
    merged: dict[tuple[str, str], JobRecord] = {}
    for rec in records:
        key = (rec.cluster, rec.job_id)
        first = merged.get(key)
        if first is None:
            merged[key] = rec
            continue
        if not _same(first, rec):
            result.skip("duplicate")
            continue
        if (first.project, first.phase) != (rec.project, rec.phase):
            result.warn(f"{rec.origin}: job {rec.job_id!r} is listed again with project/phase "
                        f"{rec.project!r}/{rec.phase!r}; kept {first.project!r}/{first.phase!r} from {first.origin}")
        end = None if first.end is None or rec.end is None else max(first.end, rec.end)
        nodes = tuple(dict.fromkeys(first.nodes + rec.nodes))
        gpus = first.gpus_per_node if rec.gpus_per_node is None else max(first.gpus_per_node or 0, rec.gpus_per_node)
        merged[key] = replace(first, start=min(first.start, rec.start), end=end, nodes=nodes, gpus_per_node=gpus)
        result.skip("requeued_run_merged")
    result.records.extend(merged.values())
