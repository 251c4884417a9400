"""Kubernetes pods from the processes on each GPU (``/proc/<pid>/cgroup``).

The kubelet puts every container into a cgroup below its pod's cgroup, whose
name carries the pod UID: with the cgroupfs driver
``/kubepods/burstable/pod<uid>/<container id>``, with the systemd driver
``/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _>.slice/
cri-containerd-<container id>.scope`` (also ``docker-`` and ``crio-``), and for
the Guaranteed QoS class without the QoS level. The UID is what
kube-state-metrics exports as ``uid``, so energy series join to pod names,
namespaces and labels in PromQL without the exporter talking to the API
server (no credentials, no extra load, works while the API is down).

Processes come and go between the GPU read and this one: a vanished or
unreadable process is counted and skipped, never an error that stops the poll.
"""

from __future__ import annotations

import collections
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from ..backends.base import GpuReading
from .base import Assignment, Job

log = logging.getLogger("wattprint.jobs")

SOURCE = "kubernetes"

_HEX = "[0-9a-fA-F]"
# Pod UIDs are RFC 4122 UUIDs; static pods use a 32-hex hash of their manifest instead.
_UID = rf"{_HEX}{{8}}(?:[-_]?{_HEX}{{4}}){{3}}[-_]?{_HEX}{{12}}"
# "pod<uid>" (cgroupfs) or "kubepods[-<qos>]-pod<uid>.slice" (systemd; also kubelet-kubepods-...).
_POD = re.compile(rf"(?:[A-Za-z0-9_-]*-)?pod({_UID})(?:\.slice)?", re.ASCII)
# "<id>" (cgroupfs) or "<runtime>-<id>.scope" (systemd).
_CONTAINER = re.compile(rf"(?:(?:cri-containerd|docker|crio|cri-o)-)?({_HEX}{{64}})(?:\.scope)?", re.ASCII)


class KubernetesDiscovery:
    """--job-discovery kubernetes: map each GPU process to its pod."""

    name = SOURCE

    def __init__(self, procfs: str | Path = "/proc") -> None:
        self.procfs = Path(procfs)
        self.errors: collections.Counter[str] = collections.Counter()

    def discover(self, readings: Sequence[GpuReading]) -> Assignment:
        # One process may use several GPUs: look it up once per poll.
        seen: dict[int, tuple[str, str] | None] = {}
        found: Assignment = {}
        for r in readings:
            if r.pids is None:  # the backend cannot see processes on this GPU
                continue
            pods: dict[str, tuple[set[int], set[str]]] = {}
            for pid in r.pids:
                if pid not in seen:
                    seen[pid] = self._pod_of(pid)
                hit = seen[pid]
                if hit is None:
                    continue
                uid, container = hit
                pids, containers = pods.setdefault(uid, (set(), set()))
                pids.add(pid)
                if container:
                    containers.add(container)
            if pods:
                # Job is frozen: build it once all of the pod's processes on this GPU are known.
                found[r.info.index] = {
                    Job(uid, SOURCE, pod_uid=uid, container=",".join(sorted(containers))): frozenset(pids)
                    for uid, (pids, containers) in pods.items()
                }
        return found

    def _pod_of(self, pid: int) -> tuple[str, str] | None:
        try:
            text = (self.procfs / str(pid) / "cgroup").read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            self._skip("proc_unreadable", pid, f"cgroup: {exc.strerror or exc}")
            return None
        hit = pod_from_cgroup(text)
        if hit is None:
            # Not in a pod (a host process, or a container outside Kubernetes): its energy stays idle.
            self._skip("no_pod", pid, "no kubepods pod<uid> in cgroup")
            return None
        return hit

    def _skip(self, reason: str, pid: int, detail: str) -> None:
        # Exited and non-pod processes are routine, so this stays at debug level.
        self.errors[reason] += 1
        log.debug("kubernetes skipped pid=%d reason=%s %s", pid, reason, detail)
        return None


def pod_from_cgroup(text: str) -> tuple[str, str] | None:
    """(pod UID, container id or "") from a ``/proc/<pid>/cgroup`` file (v1 or v2), or None."""
    best: tuple[str, str] | None = None
    for line in text.splitlines():
        # hierarchy-id:controllers:path; the path itself may contain ':'.
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        components = parts[2].split("/")
        in_kubepods = False
        for i, component in enumerate(components):
            in_kubepods = in_kubepods or "kubepods" in component
            m = _POD.fullmatch(component)
            # Seen from inside another cgroup namespace the path starts with "/../.." and the
            # kubepods level may be cut off; otherwise a "pod<uid>" outside kubepods is not a pod.
            if m is None or not (in_kubepods or all(c in ("", "..") for c in components[:i])):
                continue
            uid = m.group(1).replace("_", "-").lower()
            c = _CONTAINER.fullmatch(components[i + 1]) if i + 1 < len(components) else None
            hit = (uid, c.group(1).lower() if c else "")
            if hit[1]:
                return hit
            best = best or hit
            break
    return best
