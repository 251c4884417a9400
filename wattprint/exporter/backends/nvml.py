"""NVML backend: the only module that imports pynvml (package nvidia-ml-py).

Per-call failures are recorded by call name and never stop the other GPUs.
A call that answers NotSupported is remembered and not asked again, so an old
board without (say) an energy counter costs nothing per poll and is not
reported as failing every second.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

from ...common.logs import kv
from ..mig import board_slices
from .base import BackendUnavailable, GpuInfo, GpuReading, MigInstance, id_order

log = logging.getLogger("wattprint.nvml")

# A board's MIG instances are listed again at most this often (they change only when an administrator creates or
# destroys one); their processes are read every poll.
MIG_REFRESH_S = 30.0
# NVML_GPU_INSTANCE_PROFILE_1_SLICE .. the last profile index NVML defines (0x0 .. 0xE in nvml.h 12.x)
_PROFILE_INDEXES = 15
# NVML's "not available" for a process's GPU/compute instance id (a process on a board not in MIG mode)
_NO_INSTANCE = 0xFFFFFFFF


@dataclass
class _Device:
    handle: Any
    info: GpuInfo
    unsupported: set[str] = field(default_factory=set)
    last_process_sample_us: int = 0
    mig: tuple[MigInstance, ...] = ()
    mig_listed_at: float | None = None
    profile_names: dict[int, str] | None = None   # the board's GPU-instance profile id -> name, read once


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlBackend:
    name = "nvml"

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self._nv = nvml
        self._devices: list[_Device] = []

    def open(self) -> None:
        if self._nv is None:
            try:
                import pynvml
            except ImportError:
                raise BackendUnavailable(
                    "the nvidia-ml-py package is not installed: pip install nvidia-ml-py, "
                    "or use --backend replay on a machine without a GPU"
                ) from None
            self._nv = pynvml
        nv = self._nv
        try:
            nv.nvmlInit()
            count = nv.nvmlDeviceGetCount()
            driver = _text(nv.nvmlSystemGetDriverVersion())
        except nv.NVMLError as exc:
            raise BackendUnavailable(
                f"cannot initialise NVML ({exc}): check that the NVIDIA driver is loaded and that this "
                "process sees /dev/nvidia* and libnvidia-ml.so (in a container: the NVIDIA runtime), "
                "or use --backend dcgm or --backend replay"
            ) from None
        for i in range(count):
            try:
                h = nv.nvmlDeviceGetHandleByIndex(i)
                info = GpuInfo(
                    index=str(i),
                    uuid=_text(nv.nvmlDeviceGetUUID(h)),
                    model=_text(nv.nvmlDeviceGetName(h)),
                    driver=driver,
                )
            except nv.NVMLError as exc:
                # A board lost at start-up is skipped, not fatal: the rest still get measured.
                log.error("gpu skipped at start-up", extra=kv(gpu=i, err=exc))
                continue
            dev = _Device(handle=h, info=info)
            try:
                nv.nvmlDeviceGetTotalEnergyConsumption(h)
            except nv.NVMLError_NotSupported:
                dev.unsupported.add("energy")
                dev.info = GpuInfo(info.index, info.uuid, info.model, info.driver, has_energy_counter=False)
                log.warning("gpu has no energy counter; integrating power", extra=kv(gpu=i, uuid=info.uuid))
            except nv.NVMLError:
                pass  # transient: read() will count it
            self._devices.append(dev)
        log.info("nvml ready", extra=kv(gpus=len(self._devices), driver=driver))

    def _call(self, dev: _Device, name: str, failed: list[str], fn: Any, *args: Any) -> Any:
        if name in dev.unsupported:
            return None
        nv = self._nv
        assert nv is not None
        try:
            return fn(dev.handle, *args)
        except nv.NVMLError_NotSupported:
            dev.unsupported.add(name)
            log.info("call not supported; not asked again", extra=kv(gpu=dev.info.index, call=name))
        except nv.NVMLError as exc:
            failed.append(name)
            log.debug("nvml call failed", extra=kv(gpu=dev.info.index, call=name, err=exc))
        return None

    def _process_util(self, dev: _Device, failed: list[str]) -> dict[int, float]:
        nv = self._nv
        assert nv is not None
        if "process_utilization" in dev.unsupported:
            return {}
        try:
            samples = nv.nvmlDeviceGetProcessUtilization(dev.handle, dev.last_process_sample_us)
        except nv.NVMLError_NotFound:
            return {}  # no new sample since last time: "nothing new", not a failure
        except nv.NVMLError_NotSupported:
            dev.unsupported.add("process_utilization")
            return {}
        except nv.NVMLError:
            failed.append("process_utilization")
            return {}
        util: dict[int, float] = {}
        for s in samples:
            if s.timeStamp > dev.last_process_sample_us:
                dev.last_process_sample_us = s.timeStamp
            util[s.pid] = util.get(s.pid, 0.0) + float(s.smUtil)
        return util

    def _mig_instances(self, dev: _Device, failed: list[str]) -> tuple[MigInstance, ...]:
        """The board's MIG instances (no PIDs yet), listed again every MIG_REFRESH_S; () when not in MIG mode."""
        nv = self._nv
        assert nv is not None
        now = time.monotonic()
        if "mig" in dev.unsupported or (dev.mig_listed_at is not None and now - dev.mig_listed_at < MIG_REFRESH_S):
            return dev.mig
        mode = self._call(dev, "mig", failed, nv.nvmlDeviceGetMigMode)
        if mode is None:
            dev.mig_listed_at = None if "mig" not in dev.unsupported else now
            return dev.mig if "mig" not in dev.unsupported else ()
        dev.mig_listed_at = now
        if mode[0] != nv.NVML_DEVICE_MIG_ENABLE:
            dev.mig = ()
            return ()
        found: dict[str, MigInstance] = {}
        try:
            for i in range(nv.nvmlDeviceGetMaxMigDeviceCount(dev.handle)):
                try:
                    mh = nv.nvmlDeviceGetMigDeviceHandleByIndex(dev.handle, i)
                except nv.NVMLError_NotFound:
                    continue          # an empty slot
                gi = str(nv.nvmlDeviceGetGpuInstanceId(mh))
                if gi in found:
                    continue          # another compute instance of the same GPU instance
                attrs = nv.nvmlDeviceGetAttributes(mh)
                slices = int(attrs.gpuInstanceSliceCount)
                profile = self._profile_name(dev, int(gi)) or f"{slices}g.{round(attrs.memorySizeMB / 1024)}gb"
                found[gi] = MigInstance(gi_id=gi, profile=profile, slices=slices, uuid=_text(nv.nvmlDeviceGetUUID(mh)))
        except nv.NVMLError as exc:
            failed.append("mig_devices")
            dev.mig_listed_at = None  # listed again next poll; the last good list meanwhile
            log.debug("nvml MIG listing failed", extra=kv(gpu=dev.info.index, err=exc))
            return dev.mig
        dev.mig = tuple(sorted(found.values(), key=lambda m: id_order(m.gi_id)))
        return dev.mig

    def _profile_name(self, dev: _Device, gi: int) -> str:
        """NVML's name of a GPU instance's profile ("1g.10gb"), or "" where it cannot be had (the calls need more
        privileges on some drivers): the caller then writes one from the slices and memory."""
        nv = self._nv
        assert nv is not None
        try:
            profile_id = nv.nvmlGpuInstanceGetInfo(nv.nvmlDeviceGetGpuInstanceById(dev.handle, gi)).profileId
        except (nv.NVMLError, AttributeError):
            return ""
        if dev.profile_names is None:       # a board's profiles never change: asked once, not at every listing
            dev.profile_names = {}
            for index in range(_PROFILE_INDEXES):
                try:
                    info = nv.nvmlDeviceGetGpuInstanceProfileInfo(dev.handle, index)
                except (nv.NVMLError, AttributeError):
                    continue       # a profile this board does not have
                dev.profile_names[int(info.id)] = _text(info.name).removeprefix("MIG ").strip()
        return dev.profile_names.get(int(profile_id), "")

    def read(self) -> list[GpuReading]:
        nv = self._nv
        assert nv is not None
        out = []
        for dev in self._devices:
            failed: list[str] = []
            energy = self._call(dev, "energy", failed, nv.nvmlDeviceGetTotalEnergyConsumption)
            power_mw = self._call(dev, "power", failed, nv.nvmlDeviceGetPowerUsage)
            limit_mw = self._call(dev, "power_limit", failed, nv.nvmlDeviceGetEnforcedPowerLimit)
            util = self._call(dev, "utilization", failed, nv.nvmlDeviceGetUtilizationRates)
            mem = self._call(dev, "memory", failed, nv.nvmlDeviceGetMemoryInfo)
            procs = self._call(dev, "processes", failed, nv.nvmlDeviceGetComputeRunningProcesses)
            mig = self._mig_instances(dev, failed)
            # per-process utilisation is not available in MIG mode: the poller splits an instance equally
            proc_util = self._process_util(dev, failed) if procs and not mig else {}
            has_counter = "energy" not in dev.unsupported
            ok = energy is not None if has_counter else power_mw is not None
            out.append(
                GpuReading(
                    info=dev.info,
                    timestamp=time.monotonic(),
                    ok=ok,
                    energy_mj=int(energy) if energy is not None else None,
                    power_watts=power_mw / 1000.0 if power_mw is not None else None,
                    power_limit_watts=limit_mw / 1000.0 if limit_mw is not None else None,
                    utilization_ratio=util.gpu / 100.0 if util is not None else None,
                    memory_used_bytes=int(mem.used) if mem is not None else None,
                    pids=tuple(sorted({p.pid for p in procs})) if procs is not None else None,
                    process_sm_util=proc_util,
                    failed_calls=tuple(failed),
                    mig=_with_pids(mig, procs),
                    mig_slices=board_slices(dev.info.model) if mig else 0,
                )
            )
        return out

    def close(self) -> None:
        if self._nv is not None and self._devices:
            try:
                self._nv.nvmlShutdown()
            except self._nv.NVMLError:
                pass


def _with_pids(mig: tuple[MigInstance, ...], procs: list[Any] | None) -> tuple[MigInstance, ...]:
    """The instances with the PIDs the board's process list places on each (by the processes' gpuInstanceId)."""
    if not mig or procs is None:
        return mig
    on: dict[str, set[int]] = {}
    for p in procs:
        gi = getattr(p, "gpuInstanceId", _NO_INSTANCE)
        if gi is not None and gi != _NO_INSTANCE:
            on.setdefault(str(gi), set()).add(int(p.pid))
    return tuple(replace(m, pids=tuple(sorted(on.get(m.gi_id, ())))) for m in mig)
