"""The kubelet's PodResources API (v1 ``List``): which pod holds which device, over the kubelet's unix socket.

This is the only module that imports ``grpc`` (the ``kubernetes`` extra), and only when a client is made: the base
exporter installs and runs without it. Every way the read can fail (no socket, no grpcio, kubelet down or slow, a
reply too large) is a PodResourcesUnavailable with a short, stable reason that the caller counts and logs once.

Only the resources of the backend's vendor are read (``DevicePlugin``, ``PLUGINS``): another vendor's GPUs are not
this exporter's, and their ids (indices above all) could name one of its GPUs by accident.

Device ids are what the device plugin advertised. The NVIDIA plugin uses GPU UUIDs (``GPU-...``), MIG UUIDs
(``MIG-...``, mixed strategy), time-slicing replicas of either as ``<id>::<n>``, or indices (``0``) with
DEVICE_ID_STRATEGY=index; GKE's plugin names ``nvidia<i>``, ``nvidia<i>/gi<g>`` and ``.../vgpu<n>`` replicas.
AMD's plugin (ROCm/k8s-device-plugin) names a GPU by its PCI address (``0000:0c:00.0``), an MI300 compute
partition past the first by its platform device (``amdgpu_xcp_<n>``), time-slicing replicas ``<id>-slice-<n>``,
under ``amd.com/gpu`` or, with its mixed naming strategy, ``amd.com/<compute>_<memory>`` (``amd.com/cpx_nps4``).
``device_table`` and ``amd_device_table`` map each of those to the Assignment key the poller charges: the GPU
index, or ``<gpu>.<gi>`` (a MIG instance or compute partition).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..backends.base import GpuReading, instance_key

DEFAULT_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
# The kubelet's own podresources client allows 16 MiB replies; a node with 110 pods answers in a few kB.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Device plugins of NVIDIA (nvidia.com/gpu, nvidia.com/mig-1g.10gb, renamed shared resources such as
# nvidia.com/gpu.shared) and GKE's; other resources (NICs, hugepages) can reuse small integer ids.
RESOURCE_PREFIX = "nvidia.com/"
# AMD's device plugin: amd.com/gpu, amd.com/<compute>_<memory> partition types (mixed strategy), and gpu_vf/gpu_pf
# passthrough resources, whose ids (IOMMU groups, VFs bound to vfio-pci) name no GPU amdsmi reads here.
AMD_RESOURCE_PREFIX = "amd.com/"

_REPLICA = re.compile(r"(.+?)(?:::\d+|/vgpu\d+)", re.ASCII)
_AMD_REPLICA = re.compile(r"(.+)-slice-\d+", re.ASCII)    # the plugin's gpu.replicas: "<id>-slice-<n>"


class PodResourcesUnavailable(Exception):
    """The API could not be read this time; ``reason`` is a stable word for counters and logs."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class PodDevices:
    """One pod's devices of the read vendor's resources: (container name, device id) pairs."""

    namespace: str
    name: str
    devices: tuple[tuple[str, str], ...]


class PodResourcesClient:
    """A v1 PodResourcesLister client on one unix socket; the channel is kept and reconnects by itself."""

    def __init__(self, socket_path: str, timeout: float = 2.0, prefix: str = RESOURCE_PREFIX) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self.prefix = prefix
        self._grpc: Any = None
        self._stub: Any = None
        self._channel: Any = None
        self._import_error = ""
        try:
            import grpc

            from .podresources_v1 import api_pb2, api_pb2_grpc
        except ImportError as exc:  # the kubernetes extra is not installed
            self._import_error = str(exc)
            return
        self._grpc = grpc
        self._pb2 = api_pb2
        self._stub_class = api_pb2_grpc.PodResourcesListerStub

    def list(self) -> list[PodDevices]:
        """Pods holding devices of the resources named ``prefix...``; raises PodResourcesUnavailable."""
        try:
            st = os.stat(self.socket_path)
        except OSError as exc:
            raise PodResourcesUnavailable("socket_missing", f"{self.socket_path}: {exc.strerror or exc}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise PodResourcesUnavailable("socket_missing", f"{self.socket_path} is not a socket")
        if self._grpc is None:
            raise PodResourcesUnavailable("grpc_missing", f"{self._import_error} (pip install 'wattprint[kubernetes]')")
        grpc = self._grpc
        if self._stub is None:
            self._channel = grpc.insecure_channel(f"unix:{self.socket_path}", options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", 1024),
                # no proxy or DNS for a local socket; one connection, reused poll after poll
                ("grpc.enable_http_proxy", 0),
            ])
            self._stub = self._stub_class(self._channel)
        try:
            reply = self._stub.List(self._pb2.ListPodResourcesRequest(), timeout=self.timeout)
        except grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            details = exc.details() if callable(getattr(exc, "details", None)) else ""
            reason = {grpc.StatusCode.DEADLINE_EXCEEDED: "timeout", grpc.StatusCode.UNAVAILABLE: "unavailable",
                      grpc.StatusCode.RESOURCE_EXHAUSTED: "too_large",
                      grpc.StatusCode.UNIMPLEMENTED: "unimplemented"}.get(code, "rpc_error")
            name = code.name if code is not None else type(exc).__name__
            raise PodResourcesUnavailable(reason, f"List on {self.socket_path}: {name} {details}".strip()) from None
        return _pods(reply.pod_resources, self.prefix)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = self._stub = None


def _pods(pod_resources: Iterable[Any], prefix: str = RESOURCE_PREFIX) -> list[PodDevices]:
    pods = []
    for p in pod_resources:
        devices = tuple((c.name, device_id) for c in p.containers for d in c.devices
                        if d.resource_name.startswith(prefix) for device_id in d.device_ids)
        if devices:
            pods.append(PodDevices(p.namespace, p.name, devices))
    return pods


def device_table(readings: Sequence[GpuReading]) -> dict[str, str]:
    """Every device id a device plugin may give a GPU or MIG instance -> its Assignment key."""
    table: dict[str, str] = {}
    for r in readings:
        gpu = r.info.index
        for alias in (r.info.uuid, gpu, f"nvidia{gpu}"):
            table[alias] = gpu
        for inst in r.mig:
            key = instance_key(gpu, inst.gi_id)
            if inst.uuid:
                table[inst.uuid] = key
            table[f"nvidia{gpu}/gi{inst.gi_id}"] = key
    return table


def device_key(device_id: str, table: dict[str, str]) -> str | None:
    """The Assignment key of one allocated device id (a replica of a GPU counts as that GPU), or None."""
    key = table.get(device_id)
    if key is None:
        m = _REPLICA.fullmatch(device_id)
        key = table.get(m.group(1)) if m else None
    return key


def amd_device_table(readings: Sequence[GpuReading]) -> dict[str, str]:
    """The kernel device names of every GPU and compute partition (what AMD's plugin allocates by) -> its key.

    Only those names: AMD's plugin never allocates by UUID or index, and its passthrough resources use IOMMU group
    numbers, which an index would match by accident.
    """
    table: dict[str, str] = {}
    for r in readings:
        for name in r.info.kernel_devices:
            table[name] = r.info.index
        for inst in r.mig:
            for name in inst.kernel_devices:
                table[name] = instance_key(r.info.index, inst.gi_id)
    return table


def amd_device_key(device_id: str, table: dict[str, str]) -> str | None:
    """The Assignment key of one ``amd.com/`` device id, in any case (sysfs names are lower case; AMD's own
    exporter lowers them too), a time-slicing replica counting as its device; or None."""
    device_id = device_id.lower()
    key = table.get(device_id)
    if key is None:
        m = _AMD_REPLICA.fullmatch(device_id)
        key = table.get(m.group(1)) if m else None
    return key


@dataclass(frozen=True)
class DevicePlugin:
    """One vendor's device plugins: the resources read, and how their device ids map to the backend's GPUs."""

    prefix: str
    table: Callable[[Sequence[GpuReading]], dict[str, str]]
    key: Callable[[str, dict[str, str]], str | None]


# by the vendor of the backend: amd with amdsmi, nvidia with nvml, dcgm and replay
PLUGINS = {
    "nvidia": DevicePlugin(RESOURCE_PREFIX, device_table, device_key),
    "amd": DevicePlugin(AMD_RESOURCE_PREFIX, amd_device_table, amd_device_key),
}
