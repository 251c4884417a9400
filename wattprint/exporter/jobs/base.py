"""Job discovery: which jobs run on which GPU at this poll.

A discovery returns, per GPU index, the jobs on it and the PIDs through which
each job was seen (empty for sources that see no processes, like a mapping
directory). Problems with individual entries (unreadable /proc files,
malformed mapping files) are counted in ``errors`` by reason and skipped:
they never stop collection.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..backends.base import GpuReading


@dataclass(frozen=True, order=True)
class Job:
    job_id: str
    # Which discovery found it: slurm, mapping-dir or kubernetes.
    source: str
    # Kubernetes pod UID (kube-state-metrics' ``uid`` label); empty elsewhere.
    pod_uid: str = ""
    # Container ID(s) seen on this GPU, comma-separated; empty elsewhere.
    container: str = ""


# gpu index (or `<gpu>.<gi>` for a MIG instance: backends.base.instance_key) -> job -> PIDs of that job on it
Assignment = dict[str, dict[Job, frozenset[int]]]


class JobDiscovery(Protocol):
    name: str
    errors: collections.Counter[str]

    def discover(self, readings: Sequence[GpuReading]) -> Assignment: ...


class NoDiscovery:
    """--job-discovery none: every joule is booked to the GPU's idle series."""

    name = "none"

    def __init__(self) -> None:
        self.errors: collections.Counter[str] = collections.Counter()

    def discover(self, readings: Sequence[GpuReading]) -> Assignment:
        return {}
