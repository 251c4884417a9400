"""Slurm jobs from the processes on each GPU (``/proc/<pid>/cgroup``, then ``environ``).

slurmd puts every step of a job into a cgroup whose path holds ``job_<id>``
(cgroup v1: ``/slurm/uid_1000/job_123/step_0/task_0``; cgroup v2:
``/system.slice/slurmstepd.scope/job_123/step_batch/user/task_0``). The path
is readable by anyone and cannot be changed by the job, so it is the source
trusted first. Without Slurm's cgroup plugin (proctrack/linuxproc, or a
process started outside a step) the job id is taken from the process's
``SLURM_JOB_ID`` environment variable, which only root or the job's owner
can read.

The PIDs come from the GPU backend, and processes come and go between that
read and this one: a vanished or unreadable process is counted and skipped,
never an error that stops the poll.
"""

from __future__ import annotations

import re

from .base import Job
from .proc import ProcDiscovery

SOURCE = "slurm"

_CGROUP_JOB = re.compile(r"job_(\d+)", re.ASCII)
_ENV_JOB = re.compile(r"\d+", re.ASCII)
_ENV_KEY = b"SLURM_JOB_ID="


class SlurmDiscovery(ProcDiscovery):
    """--job-discovery slurm: map each GPU process to its Slurm job."""

    name = SOURCE

    def _lookup(self, pid: int) -> tuple[str, str] | None:
        job_id = self._job_of(pid)
        return (job_id, "") if job_id is not None else None

    def _job(self, key: str, extras: set[str]) -> Job:
        return Job(key, SOURCE)

    def _job_of(self, pid: int) -> str | None:
        base = self.procfs / str(pid)
        try:
            cgroup = (base / "cgroup").read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            self._skip("proc_unreadable", pid, f"cgroup: {exc.strerror or exc}")
            return None
        job_id = job_from_cgroup(cgroup)
        if job_id is not None:
            return job_id
        try:
            environ = (base / "environ").read_bytes()
        except OSError as exc:
            self._skip("proc_unreadable", pid, f"environ: {exc.strerror or exc}")
            return None
        job_id = job_from_environ(environ)
        if job_id is None:
            # Not a Slurm process (or an admin's tool): its energy stays idle.
            self._skip("no_job", pid, "no job_<id> in cgroup and no SLURM_JOB_ID")
            return None
        return job_id



def job_from_cgroup(text: str) -> str | None:
    """The Slurm job id in a ``/proc/<pid>/cgroup`` file (v1 or v2), or None."""
    for line in text.splitlines():
        # hierarchy-id:controllers:path; the path itself may contain ':'.
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for component in parts[2].split("/"):
            job_id = job_from_cgroup_dir(component)
            if job_id is not None:
                return job_id
    return None


def job_from_cgroup_dir(name: str) -> str | None:
    """The job id if ``name`` is a Slurm job's cgroup directory (``job_<id>``), else None."""
    m = _CGROUP_JOB.fullmatch(name)
    return m.group(1) if m else None


def job_from_environ(data: bytes) -> str | None:
    """``SLURM_JOB_ID`` from a NUL-separated ``/proc/<pid>/environ``, or None."""
    for entry in data.split(b"\0"):
        if entry.startswith(_ENV_KEY):
            value = entry[len(_ENV_KEY):].decode("ascii", errors="replace").strip()
            return value if _ENV_JOB.fullmatch(value) else None
    return None
