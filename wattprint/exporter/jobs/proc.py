"""Shared by the discoveries that read ``/proc/<pid>/...`` for the PIDs a backend sees on each GPU.

Each subclass only says how one PID maps to a job (``_lookup``) and how a job
is built from the PIDs and extra facts grouped under it (``_job``). The
per-poll memo (a process on several GPUs is read once), the grouping per GPU
and the counted, debug-level skips live here once.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Sequence
from pathlib import Path

from ...common.logs import kv
from ..backends.base import GpuReading, instance_key
from .base import Assignment, Job

log = logging.getLogger("wattprint.jobs")


class ProcDiscovery:
    name = "proc"

    def __init__(self, procfs: str | Path = "/proc") -> None:
        self.procfs = Path(procfs)
        self.errors: collections.Counter[str] = collections.Counter()

    def _lookup(self, pid: int) -> tuple[str, str] | None:
        """(job key, extra fact or "") for one PID, or None after counting why via ``_skip``."""
        raise NotImplementedError

    def _job(self, key: str, extras: set[str]) -> Job:
        raise NotImplementedError

    def discover(self, readings: Sequence[GpuReading]) -> Assignment:
        seen: dict[int, tuple[str, str] | None] = {}
        found: Assignment = {}
        for r in readings:
            for key, gpu_pids in _process_lists(r):
                groups: dict[str, tuple[set[int], set[str]]] = {}
                for pid in gpu_pids:
                    if pid not in seen:
                        seen[pid] = self._lookup(pid)
                    hit = seen[pid]
                    if hit is None:
                        continue
                    pids, extras = groups.setdefault(hit[0], (set(), set()))
                    pids.add(pid)
                    if hit[1]:
                        extras.add(hit[1])
                if groups:
                    # Job is frozen: build it once all of the job's processes on this GPU are known.
                    found[key] = {self._job(k, extras): frozenset(pids) for k, (pids, extras) in groups.items()}
        return found

    def _skip(self, reason: str, pid: int, detail: str) -> None:
        # Exited processes and processes outside any job are routine, so this stays at debug level.
        self.errors[reason] += 1
        log.debug("%s skipped", self.name, extra=kv(pid=pid, reason=reason, detail=detail))


def _process_lists(r: GpuReading) -> list[tuple[str, tuple[int, ...]]]:
    """(Assignment key, PIDs) of a board: per MIG instance where the backend sees the instances' processes (a job is
    charged on the instance it runs on), else the board's; none when the backend cannot see processes."""
    if r.mig and any(i.pids is not None for i in r.mig):
        return [(instance_key(r.info.index, i.gi_id), i.pids) for i in r.mig if i.pids is not None]
    return [] if r.pids is None else [(r.info.index, r.pids)]
