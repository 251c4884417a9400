"""The exporter's state file (``--state-file``): exported totals that survive a restart.

Per GPU UUID it holds the last raw hardware counter value and the exported totals
(GPU, idle, each job's energy, counter resets), all integer millijoules. It is
small JSON, written atomically (temporary file, fsync, ``os.replace``), so a
reader sees either the old file or the new one, never half of one. Anything that
does not parse as this format is refused as a whole: the exporter then starts
from zero, as it does without a state file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .jobs.base import Job

FORMAT = "wattprint-exporter-state"
VERSION = 1


class StateError(Exception):
    """The state file is missing, unreadable, corrupt or of another version."""


@dataclass(frozen=True)
class SavedGpu:
    uuid: str
    index: str
    # Raw hardware counter (mJ since driver load) at the last poll; None when the GPU had no counter.
    raw_counter_mj: int | None
    energy_mj: int
    idle_mj: int
    resets: int
    jobs: tuple[tuple[Job, int], ...]


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise StateError(f"{what}: expected an integer >= 0, got {v!r}")
    return v


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise StateError(f"{what}: expected a string, got {v!r}")
    return v


def load_state(path: str | os.PathLike[str]) -> dict[str, SavedGpu]:
    """GPU UUID -> saved totals; StateError (one-line reason) if the file cannot be used."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StateError("no state file yet") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read: {exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StateError(f"not a {FORMAT} file")
    if doc.get("version") != VERSION:
        raise StateError(f"version {doc.get('version')!r}, this exporter reads version {VERSION}")
    gpus = doc.get("gpus")
    if not isinstance(gpus, dict):
        raise StateError("'gpus' is not an object")
    out: dict[str, SavedGpu] = {}
    for uuid, g in gpus.items():
        if not isinstance(g, dict):
            raise StateError(f"gpu {uuid}: not an object")
        raw = g.get("raw_counter_mj")
        jobs = g.get("jobs")
        if not isinstance(jobs, list):
            raise StateError(f"gpu {uuid}: 'jobs' is not a list")
        saved_jobs = []
        for j in jobs:
            if not isinstance(j, dict):
                raise StateError(f"gpu {uuid}: a job is not an object")
            job = Job(job_id=_str(j.get("job_id"), "job_id"), source=_str(j.get("source"), "source"),
                      pod_uid=_str(j.get("pod_uid", ""), "pod_uid"),
                      container=_str(j.get("container", ""), "container"))
            saved_jobs.append((job, _int(j.get("energy_mj"), f"gpu {uuid} job {job.job_id} energy_mj")))
        out[uuid] = SavedGpu(
            uuid=uuid,
            index=_str(g.get("index"), f"gpu {uuid} index"),
            raw_counter_mj=None if raw is None else _int(raw, f"gpu {uuid} raw_counter_mj"),
            energy_mj=_int(g.get("energy_mj"), f"gpu {uuid} energy_mj"),
            idle_mj=_int(g.get("idle_mj"), f"gpu {uuid} idle_mj"),
            resets=_int(g.get("resets"), f"gpu {uuid} resets"),
            jobs=tuple(saved_jobs),
        )
    return out


def dump_state(gpus: list[SavedGpu], saved_unixtime: float) -> str:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "saved_unixtime": saved_unixtime,
        "gpus": {
            g.uuid: {
                "index": g.index,
                "raw_counter_mj": g.raw_counter_mj,
                "energy_mj": g.energy_mj,
                "idle_mj": g.idle_mj,
                "resets": g.resets,
                "jobs": [
                    {"job_id": j.job_id, "source": j.source, "pod_uid": j.pod_uid, "container": j.container,
                     "energy_mj": mj}
                    for j, mj in g.jobs
                ],
            }
            for g in gpus
        },
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"


def write_state(path: str | os.PathLike[str], text: str) -> None:
    """Atomically replace ``path`` with ``text``: temporary file in the same directory, fsync, rename."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not every filesystem allows fsync on a directory
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
