"""Kubernetes pods on each GPU: by device allocation (the kubelet's PodResources API), else by process.

With ``--kubelet-podresources-socket`` (the default) each poll lists the kubelet's pod -> device allocations
(podresources.py; the device plugin of the backend's vendor, ``vendor``): a pod is charged for the GPU, MIG instance
or compute partition it holds whether or not it runs anything on it, and
its PIDs (where this process sees the host's, ``hostPID``) only weigh the split between pods sharing one GPU. When
the socket is absent or the API fails, that poll falls back to the processes on each GPU, as below, and says so
(``method``, ``wattprint_job_discovery_errors_total{reason="podresources_..."}``, one log line per reason).

The /proc method: pods from the processes on each GPU (``/proc/<pid>/cgroup``).

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
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ...common.logs import kv
from ..backends.base import GpuReading, instance_key
from .base import Assignment, Job
from .kubelet_pods import DEFAULT_DIR as DEFAULT_POD_LOGS_DIR
from .kubelet_pods import PodUidIndex
from .podresources import PLUGINS, PodDevices, PodResourcesClient, PodResourcesUnavailable
from .proc import ProcDiscovery

log = logging.getLogger("wattprint.jobs")

SOURCE = "kubernetes"
# After a failed read the API is tried again this much later; the polls in between use /proc (a kubelet that
# hangs must not hold every poll for the call timeout).
RETRY_AFTER_S = 10.0
# A pod keeps the Job it was first seen as (either method) while seen at least this often, so that a switch of
# method, or a container starting its first GPU process, never makes a second series with the same job_id.
IDENTITY_TTL_S = 3600.0

_HEX = "[0-9a-fA-F]"
# Pod UIDs are RFC 4122 UUIDs; static pods use a 32-hex hash of their manifest instead.
_UID = rf"{_HEX}{{8}}(?:[-_]?{_HEX}{{4}}){{3}}[-_]?{_HEX}{{12}}"
# "pod<uid>" (cgroupfs) or "kubepods[-<qos>]-pod<uid>.slice" (systemd; also kubelet-kubepods-...).
_POD = re.compile(rf"(?:[A-Za-z0-9_-]*-)?pod({_UID})(?:\.slice)?", re.ASCII)
# "<id>" (cgroupfs) or "<runtime>-<id>.scope" (systemd).
_CONTAINER = re.compile(rf"(?:(?:cri-containerd|docker|crio|cri-o)-)?({_HEX}{{64}})(?:\.scope)?", re.ASCII)


class KubernetesProcDiscovery(ProcDiscovery):
    """The /proc method: map each GPU process to its pod."""

    name = SOURCE
    method = "proc"

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


class KubernetesDiscovery:
    """--job-discovery kubernetes: pods by allocation (PodResources API), by process when the API cannot be read.

    ``podresources_socket`` "" keeps the /proc method alone, as before the API was used (``method`` "proc").
    ``vendor`` ("nvidia", "amd"; podresources.PLUGINS) is whose device plugin allocations are read.
    """

    name = SOURCE

    def __init__(self, procfs: str | Path = "/proc", podresources_socket: str = "",
                 pod_logs_dir: str = DEFAULT_POD_LOGS_DIR, timeout: float = 2.0, retry_after: float = RETRY_AFTER_S,
                 clock: Callable[[], float] = time.monotonic, vendor: str = "nvidia") -> None:
        self.errors: collections.Counter[str] = collections.Counter()
        self.proc = KubernetesProcDiscovery(procfs)
        self.proc.errors = self.errors          # one counter for the exporter's discovery, whichever method
        self.plugin = PLUGINS[vendor]
        self.client = (PodResourcesClient(podresources_socket, timeout, self.plugin.prefix) if podresources_socket
                       else None)
        self.uids = PodUidIndex(pod_logs_dir)
        self.method = "podresources" if self.client else "proc"
        self.retry_after = retry_after
        self._clock = clock
        self._retry_at = 0.0
        self._warned: set[str] = set()
        self._answered = False
        self._identity: dict[str, tuple[Job, float]] = {}

    def discover(self, readings: Sequence[GpuReading]) -> Assignment:
        if self.client is None:
            return self.proc.discover(readings)
        now = self._clock()
        pods: list[PodDevices] | None = None
        if now >= self._retry_at:
            try:
                pods = self.client.list()
            except PodResourcesUnavailable as exc:
                self._retry_at = now + self.retry_after
                self._note(f"podresources_{exc.reason}", exc.detail,
                           "kubelet PodResources API not read; pods are found from /proc for now (needs hostPID)")
        if pods is None:
            self.method = "proc"
            found = self.proc.discover(readings)
        else:
            if not self._answered:
                log.info("kubelet PodResources API read: pods are charged for the GPUs allocated to them",
                         extra=kv(socket=self.client.socket_path, pods=len(pods)))
                self._answered = True
            self.method = "podresources"
            found = self._from_allocations(pods, readings)
        return self._stable(found, now)

    def _from_allocations(self, pods: list[PodDevices], readings: Sequence[GpuReading]) -> Assignment:
        table = self.plugin.table(readings)
        problem = self.uids.refresh()
        if problem:
            self._note("pod_logs_unreadable", problem, "pod UIDs unknown: pods are named <namespace>/<pod>")
        pids = self._pod_pids(readings) if pods else {}
        found: Assignment = {}
        for pod in pods:
            uid = self.uids.uid(pod.namespace, pod.name)
            where = f"{pod.namespace}/{pod.name}"
            if (pod.namespace, pod.name) in self.uids.ambiguous:
                self._note("ambiguous_pod_uid", f"{where}: several pod log directories, the newest is used")
            if uid is None:
                if not problem:
                    self._note("no_pod_uid", f"{where}: no {self.uids.path}/{pod.namespace}_{pod.name}_<uid>",
                               "pod UID unknown: the pod is named <namespace>/<pod>")
                job = Job(where, SOURCE)
            else:
                job = Job(uid, SOURCE, pod_uid=uid)
            for container, device_id in pod.devices:
                key = self.plugin.key(device_id, table)
                if key is None:
                    self._note("unknown_device", f"{where} container {container}: device {device_id!r} is no GPU, "
                               "MIG instance or compute partition this exporter reads")
                    continue
                jobs = found.setdefault(key, {})
                jobs[job] = jobs.get(job, frozenset()) | frozenset(pids.get(key, {}).get(uid or "", ()))
        return found

    def _pod_pids(self, readings: Sequence[GpuReading]) -> dict[str, dict[str, set[int]]]:
        """Assignment key -> pod UID -> its PIDs there, where /proc shows the GPU processes (hostPID).

        Without hostPID the PIDs NVML reports are not this container's: a PID that reads nothing, or names a pod
        that holds no device there, is ignored, and not counted (it is the expected case, not a fault).
        """
        out: dict[str, dict[str, set[int]]] = {}
        seen: dict[int, str | None] = {}
        for r in readings:
            sources = [(r.info.index, r.pids)] + [(instance_key(r.info.index, i.gi_id), i.pids) for i in r.mig]
            for key, key_pids in sources:
                for pid in key_pids or ():
                    if pid not in seen:
                        seen[pid] = self._uid_of(pid)
                    uid = seen[pid]
                    if uid:
                        out.setdefault(key, {}).setdefault(uid, set()).add(pid)
        return out

    def _uid_of(self, pid: int) -> str | None:
        try:
            text = (self.proc.procfs / str(pid) / "cgroup").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        hit = pod_from_cgroup(text)
        return hit[0] if hit else None

    def _stable(self, found: Assignment, now: float) -> Assignment:
        out: Assignment = {}
        for key, jobs in found.items():
            mapped: dict[Job, frozenset[int]] = {}
            for job, pids in jobs.items():
                known = self._identity.get(job.job_id)
                same = known[0] if known else job
                self._identity[job.job_id] = (same, now)
                mapped[same] = mapped.get(same, frozenset()) | pids
            out[key] = mapped
        for job_id in [j for j, (_, t) in self._identity.items() if now - t > IDENTITY_TTL_S]:
            del self._identity[job_id]
        return out

    def _note(self, reason: str, detail: str, consequence: str = "") -> None:
        # Read every poll: warn once per reason, then keep quiet at debug level; the counter says how often.
        self.errors[reason] += 1
        level = logging.DEBUG if reason in self._warned else logging.WARNING
        self._warned.add(reason)
        log.log(level, consequence or "kubernetes discovery skipped a device", extra=kv(reason=reason, detail=detail))



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
