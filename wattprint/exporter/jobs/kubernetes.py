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

import re

from .base import Job
from .proc import ProcDiscovery

SOURCE = "kubernetes"

_HEX = "[0-9a-fA-F]"
# Pod UIDs are RFC 4122 UUIDs; static pods use a 32-hex hash of their manifest instead.
_UID = rf"{_HEX}{{8}}(?:[-_]?{_HEX}{{4}}){{3}}[-_]?{_HEX}{{12}}"
# "pod<uid>" (cgroupfs) or "kubepods[-<qos>]-pod<uid>.slice" (systemd; also kubelet-kubepods-...).
_POD = re.compile(rf"(?:[A-Za-z0-9_-]*-)?pod({_UID})(?:\.slice)?", re.ASCII)
# "<id>" (cgroupfs) or "<runtime>-<id>.scope" (systemd).
_CONTAINER = re.compile(rf"(?:(?:cri-containerd|docker|crio|cri-o)-)?({_HEX}{{64}})(?:\.scope)?", re.ASCII)


class KubernetesDiscovery(ProcDiscovery):
    """--job-discovery kubernetes: map each GPU process to its pod."""

    name = SOURCE

    def _lookup(self, pid: int) -> tuple[str, str] | None:
        return self._pod_of(pid)

    def _job(self, key: str, extras: set[str]) -> Job:
        return Job(key, SOURCE, pod_uid=key, container=",".join(sorted(extras)))

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
            uid = _uid(m.group(1))
            c = _CONTAINER.fullmatch(components[i + 1]) if i + 1 < len(components) else None
            hit = (uid, c.group(1).lower() if c else "")
            if hit[1]:
                return hit
            best = best or hit
            break
    return best


def pod_from_cgroup_dir(name: str) -> str | None:
    """The pod UID (lower case, with dashes) if ``name`` is a pod's cgroup directory, else None.

    Only meaningful below a ``kubepods`` cgroup; the caller checks that.
    """
    m = _POD.fullmatch(name)
    return _uid(m.group(1)) if m else None


def _uid(raw: str) -> str:
    return raw.replace("_", "-").lower()
