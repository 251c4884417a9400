"""The ``cgroups`` collector: CPU time of each job's cgroup (v2), and of the whole node.

A job's share of a socket's energy is its cgroup's ``usage_usec`` (``cpu.stat``) delta over
the node's CPU-time delta (``/proc/stat``). Job cgroups are found by walking the v2 tree
(``<sysfs>/fs/cgroup``, or ``<sysfs>/fs/cgroup/unified`` on a hybrid host) with the names
job discovery trusts: ``job_<id>`` for Slurm (and for mapping-dir, whose prolog scripts write
Slurm ids), ``pod<uid>`` / ``kubepods-<qos>-pod<uid>.slice`` below ``kubepods`` for
Kubernetes. A match is not descended into: its ``usage_usec`` already holds every step and
container below it, and the tree underneath (steps, tasks, containers) is the bulk of it.

cgroup v1 is not read: Slurm's and the kubelet's v1 layouts spread CPU accounting over
separate ``cpuacct`` hierarchies. On a v1-only host every joule is booked as host idle, and the
collector says so (success 0, one log line).
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from ..jobs.kubernetes import pod_from_cgroup_dir
from ..jobs.slurm import job_from_cgroup_dir
from .procstat import ProcStatError, node_cpu_usec, read_small, user_hz

log = logging.getLogger("wattprint.cgroups")

NAME = "cgroups"
# Slurm jobs sit 3 levels down (system.slice/slurmstepd.scope/job_N), pods 3 (kubepods.slice/<qos>/<pod>);
# nothing we look for is deeper than this, and the bound keeps a pathological tree from stalling a poll.
MAX_DEPTH = 8

_GONE = -1
# name, inside-a-kubepods-cgroup -> job id, or None
Matcher = Callable[[str, bool], str | None]


class CgroupError(Exception):
    """The node's or the jobs' CPU time could not be read this poll; the reason is the message."""


@dataclass(frozen=True)
class CpuTimes:
    node_usec: int
    # job id -> usage_usec summed over its cgroups; None when a cgroup of it could not be read this poll.
    jobs: dict[str, int | None]


def _slurm(name: str, in_kubepods: bool) -> str | None:
    return job_from_cgroup_dir(name) if name.startswith("job_") else None


def _kubernetes(name: str, in_kubepods: bool) -> str | None:
    return pod_from_cgroup_dir(name) if in_kubepods and "pod" in name else None


MATCHERS: dict[str, Matcher] = {"slurm": _slurm, "mapping-dir": _slurm, "kubernetes": _kubernetes}


def _has_subdirs(entry: os.DirEntry[str]) -> bool:
    # cgroupfs (kernfs) counts a directory's subdirectories in its link count (2 + subdirs), so a leaf
    # cgroup, like most system services, costs one lstat instead of listing its ~60 interface files.
    # Any other count (1 on filesystems that do not keep it) means: look inside.
    try:
        return entry.stat(follow_symlinks=False).st_nlink != 2
    except OSError:
        return False  # removed meanwhile


class CgroupCollector:
    name = NAME

    def __init__(self, sysfs: str, procfs: str, discovery: str, hz: int | None = None) -> None:
        self.sysfs = sysfs
        self.procfs = procfs
        self._match = MATCHERS[discovery]
        self._hz = hz or user_hz()
        self.errors: collections.Counter[str] = collections.Counter()
        self._logged: set[str] = set()

    def root(self) -> str | None:
        """The cgroup v2 mount to walk, or None on a cgroup v1-only host."""
        base = os.path.join(self.sysfs, "fs", "cgroup")
        if os.path.exists(os.path.join(base, "cgroup.controllers")):
            return base
        unified = os.path.join(base, "unified")
        if os.path.exists(os.path.join(unified, "cgroup.controllers")):
            self._once("hybrid", logging.INFO,
                       "hybrid cgroup host: job CPU time is read from %s; jobs that only have cgroup v1 directories "
                       "(Slurm's cgroup/v1 plugin, a kubelet on cgroup v1) are not seen and their CPU energy is "
                       "booked as host idle", unified)
            return unified
        return None

    def read(self) -> CpuTimes:
        try:
            node = node_cpu_usec(self.procfs, self._hz)
        except ProcStatError as exc:
            self.errors["procstat_error"] += 1
            raise CgroupError(str(exc)) from None
        root = self.root()
        if root is None:
            self._once("v1", logging.WARNING,
                       "no cgroup v2 hierarchy under %s/fs/cgroup (a cgroup v1 host): per-job CPU energy needs "
                       "cgroup v2, so all CPU energy is booked as host idle", self.sysfs)
            raise CgroupError("no cgroup v2 hierarchy")
        jobs: dict[str, int | None] = {}
        for job_id, path in self._walk(root):
            usage = self._usage(path)
            if usage == _GONE:
                continue  # removed while we looked: the job ended
            prev = jobs.get(job_id, 0)
            jobs[job_id] = None if usage is None or prev is None else prev + usage
        return CpuTimes(node_usec=node, jobs=jobs)

    def _walk(self, root: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        stack: list[tuple[str, int, bool]] = [(root, 0, False)]
        while stack:
            path, depth, in_kubepods = stack.pop()
            try:
                it = os.scandir(path)
            except FileNotFoundError:
                continue  # removed between the parent's listing and now
            except OSError as exc:
                if path == root:
                    self.errors["cgroup_read_error"] += 1
                    raise CgroupError(f"cannot list {root}: {exc.strerror or exc}") from None
                self._count("cgroup_read_error", f"cannot list {path}: {exc.strerror or exc}")
                continue
            with it:
                for entry in it:
                    # d_type from the directory listing: no stat per entry
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                    kube = in_kubepods or "kubepods" in entry.name
                    job_id = self._match(entry.name, kube)
                    if job_id is not None:
                        found.append((job_id, entry.path))
                    elif depth + 1 < MAX_DEPTH and _has_subdirs(entry):
                        stack.append((entry.path, depth + 1, kube))
        return found

    def _usage(self, cgroup: str) -> int | None:
        """usage_usec of one cgroup; _GONE if it was removed, None (counted) if unreadable."""
        path = cgroup + "/cpu.stat"
        try:
            data = read_small(path, 512)
        except FileNotFoundError:
            return _GONE
        except OSError as exc:
            self._count("cgroup_read_error", f"cannot read {path}: {exc.strerror or exc}")
            return None
        # usage_usec is the first line, whatever controllers are on
        if data.startswith(b"usage_usec "):
            try:
                end = data.find(b"\n")
                return int(data[11:end if end >= 0 else None])
            except ValueError:
                pass
        self._count("cgroup_bad_value", f"{path} does not start with a usage_usec line")
        return None

    def _count(self, reason: str, detail: str) -> None:
        self.errors[reason] += 1
        self._once(reason, logging.WARNING, "cgroups: %s (logged once; counted in "
                   "wattprint_cpu_collection_errors_total{reason=\"%s\"})", detail, reason)

    def _once(self, key: str, level: int, msg: str, *args: object) -> None:
        log.log(level if key not in self._logged else logging.DEBUG, msg, *args)
        self._logged.add(key)
