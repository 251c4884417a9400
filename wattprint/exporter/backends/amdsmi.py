"""AMD Instinct GPUs through AMD's ``amdsmi`` Python library (ROCm's amd-smi-lib): the only module importing it.

One physical GPU is one reading. amdsmi gives a processor handle per compute partition: an MI300X in CPX mode
is 8 handles, but its socket power and energy counter are the whole physical GPU's. Reading every handle's
counter and adding them up would count the socket 8 times, so the handles are grouped by physical GPU (the BD
of the BDF, as amdsmi groups its own GPU sockets), the energy and power are read once, from the first
partition, and the partitions become the board's instances: the poller splits the board's energy among them
by the MIG rule (``wattprint/exporter/mig.py``), and each partition's part among the jobs on it. A GPU in SPX
mode (one handle) is read as a whole GPU.

Each GPU (in SPX mode) or partition also carries the kernel's names of its device, by which AMD's Kubernetes device
plugin allocates it (``GpuInfo.kernel_devices``, ``MigInstance.kernel_devices``): the PCI address amdsmi gives
for the GPU or its first partition, and, from 6.3 on, the sysfs device holding the processor's render node
(``amdgpu_sysfs.py``; ``amdgpu_xcp_<n>`` for the other partitions). A name two processors share is left out.

Per-call failures are counted by call name and never stop the other GPUs. A call that answers
AMDSMI_STATUS_NOT_SUPPORTED (or NOT_YET_IMPLEMENTED) is remembered and not asked again, as in the nvml backend.
docs/exporter.md, "amdsmi", says what is read, from which amdsmi release, and the limits.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ...common.logs import kv, typed
from .amdgpu_sysfs import render_device
from .amdsmi_shapes import (
    energy_mj,
    gfx_deltas,
    gfx_ns_by_pid,
    number,
    percent_ratio,
    socket_key,
    socket_power_watts,
)
from .base import BackendUnavailable, GpuInfo, GpuReading, MigInstance

log = logging.getLogger("wattprint.amdsmi")

MB = 1024 * 1024   # amdsmi_get_gpu_vram_usage answers in MB
# The status codes meaning "this GPU or library cannot answer that call": asked once. By name: the numbers of
# some codes differ between releases (AMDSMI_STATUS_MORE_DATA is 57 in 6.4.3, 39 in 7.0.2).
_UNSUPPORTED = ("AMDSMI_STATUS_NOT_SUPPORTED", "AMDSMI_STATUS_NOT_YET_IMPLEMENTED")
_NO_DATA = "AMDSMI_STATUS_NO_DATA"
_NOT_THERE = ("", "N/A")


@dataclass
class _Processor:
    """One amdsmi processor handle: a whole GPU, or one compute partition of one."""

    handle: Any
    uuid: str
    partition: str = "0"                 # the compute partition id (kfd current_partition_id), "0" in SPX
    slices: int = 1                      # its XCDs (amdsmi_get_gpu_xcd_counter, 6.4+); 1 where unknown
    bdf: str = ""                        # amdsmi's PCI address, lower case ("0000:0c:00.1" for partition 1)
    render_device: str = ""              # the sysfs device holding its render node (6.3+), "" where unknown
    kernel_devices: tuple[str, ...] = ()  # what AMD's device plugin may allocate it by (module docstring)
    unsupported: set[str] = field(default_factory=set)
    gfx_ns: dict[int, int] = field(default_factory=dict)   # PID -> graphics-engine ns at the last read


@dataclass
class _Gpu:
    info: GpuInfo
    processors: list[_Processor]          # partition 0 first: it reads the socket's energy and power
    mode: str = ""                        # compute partition mode (SPX, DPX, QPX, CPX) where partitioned


def load_amdsmi() -> ModuleType:
    """Import amdsmi, or raise BackendUnavailable saying what is missing.

    Without libamd_smi.so the package's import prints the loader's error on stdout and then fails with
    KeyError('libamd_smi.so'), not ImportError (amdsmi_wrapper.py, 6.2.4 to 7.0.2): stdout is held during the
    import so that text does not land in the exporter's output, and any exception is turned into the reason.
    """
    held = io.StringIO()
    try:
        with contextlib.redirect_stdout(held):
            import amdsmi
    except ModuleNotFoundError as exc:
        if exc.name != "amdsmi":
            raise BackendUnavailable(f"the amdsmi package cannot load ({exc}): reinstall it") from None
        raise BackendUnavailable(
            "the amdsmi Python package is not installed: pip install /opt/rocm/share/amd_smi (the one of your "
            "ROCm release), or use --backend replay on a machine without a GPU") from None
    except Exception as exc:  # KeyError without libamd_smi.so; OSError from ctypes where it cannot load
        printed = " ".join(held.getvalue().split())
        if isinstance(exc, KeyError) or "libamd_smi" in printed:
            raise BackendUnavailable(
                "libamd_smi.so not found (ROCm's amd-smi-lib): install amd-smi-lib, or set ROCM_PATH to the "
                f"ROCm directory holding lib/libamd_smi.so{f' ({printed})' if printed else ''}") from None
        raise BackendUnavailable(f"the amdsmi package cannot load ({typed(exc)})") from None
    return amdsmi


class AmdSmiBackend:
    name = "amdsmi"

    def __init__(self, amdsmi: ModuleType | None = None, clock: Callable[[], float] = time.monotonic,
                 sysfs: str = "/sys") -> None:
        self._am = amdsmi
        self._clock = clock      # the readings' time: the intervals' length, for held time and power integration
        self._sysfs = sysfs      # where the render nodes' devices are named (--path.sysfs)
        self._gpus: list[_Gpu] = []
        self._unsupported: frozenset[int] = frozenset()
        self._no_data: int | None = None

    # -- start-up ---------------------------------------------------------------------
    def open(self) -> None:
        am = self._am = self._am or load_amdsmi()
        wrapper = am.amdsmi_wrapper
        self._unsupported = frozenset(getattr(wrapper, n) for n in _UNSUPPORTED if hasattr(wrapper, n))
        self._no_data = getattr(wrapper, _NO_DATA, None)
        try:
            am.amdsmi_init(am.AmdSmiInitFlags.INIT_AMD_GPUS)
            handles = list(am.amdsmi_get_processor_handles())
        except Exception as exc:  # AmdSmiLibraryException with the status; anything else from an odd release
            raise BackendUnavailable(
                f"cannot initialise amdsmi ({_one_line(exc)}): check that the amdgpu driver is loaded and that "
                "this process sees /dev/kfd and /dev/dri (in a container: pass both devices), or use "
                "--backend replay") from None
        driver = self._text(am.amdsmi_get_gpu_driver_info, handles[0], "driver_version") if handles else ""
        groups: dict[str, list[tuple[int, _Processor, str]]] = {}
        for i, h in enumerate(handles):
            try:
                uuid = str(am.amdsmi_get_gpu_device_uuid(h))
            except am.AmdSmiException as exc:
                # A GPU lost at start-up is skipped, not fatal: the rest still get measured.
                log.error("gpu skipped at start-up", extra=kv(handle=i, err=_one_line(exc)))
                continue
            bdf = self._text(am.amdsmi_get_gpu_device_bdf, h)
            kfd = self._kfd_info(h)
            partition, node = _whole(kfd.get("current_partition_id")), _whole(kfd.get("node_id"))
            proc = _Processor(handle=h, uuid=uuid, partition=str(partition if partition is not None else ""),
                              slices=self._xcds(h), bdf=bdf.lower(),
                              render_device=(render_device(self._sysfs, node) or "") if node is not None else "")
            groups.setdefault(socket_key(bdf) if bdf else f"#{i}", []).append((i, proc, self._model(h)))
        ordered = [_ordered(members) for members in groups.values()]
        named = _name_devices([procs for procs, _ in ordered])
        for procs, model in ordered:
            self._add_gpu(procs, model, driver)
        if not self._gpus:
            log.warning("amdsmi found no AMD GPU: nothing to measure", extra=kv(processors=len(handles)))
        log.info("amdsmi ready", extra=kv(gpus=len(self._gpus), processors=len(handles), driver=driver,
                                          named_devices=named))

    def _add_gpu(self, procs: list[_Processor], model: str, driver: str) -> None:
        """One physical GPU from its processor handles, partition 0 first."""
        primary = procs[0]
        info = GpuInfo(index=str(len(self._gpus)), uuid=primary.uuid, model=model, driver=driver,
                       kernel_devices=primary.kernel_devices if len(procs) == 1 else ())
        gpu = _Gpu(info=info, processors=procs)
        if len(procs) > 1:
            gpu.mode = self._text(self._am_fn("amdsmi_get_gpu_compute_partition"), primary.handle)
        count = self._call(primary, "energy", [], self._am_fn("amdsmi_get_energy_count"))
        if "energy" in primary.unsupported or (count is not None and energy_mj(count) is None):
            # A VM guest has no energy counter (amdsmi.h: amdsmi_get_energy_count is bare-metal only).
            primary.unsupported.add("energy")
            gpu.info = dataclasses.replace(info, has_energy_counter=False)
            log.warning("gpu has no energy counter; integrating power", extra=kv(gpu=info.index, uuid=info.uuid))
        self._gpus.append(gpu)

    def _am_fn(self, name: str) -> Any:
        """An amdsmi function, or None where this release has none (the call is then never made)."""
        return getattr(self._am, name, None)

    def _text(self, fn: Any, handle: Any, key: str = "") -> str:
        """A start-up fact as text ("" where the call fails or the fact is "N/A")."""
        assert self._am is not None
        if fn is None:
            return ""
        try:
            value = fn(handle)
        except Exception as exc:  # a fact left out never stops the start
            log.debug("amdsmi call failed at start-up", extra=kv(call=getattr(fn, "__name__", fn), err=typed(exc)))
            return ""
        value = value.get(key) if key and isinstance(value, dict) else value
        text = str(value).strip() if value is not None else ""
        return "" if text in _NOT_THERE else text

    def _model(self, handle: Any) -> str:
        assert self._am is not None
        return (self._text(self._am_fn("amdsmi_get_gpu_asic_info"), handle, "market_name")
                or self._text(self._am_fn("amdsmi_get_gpu_board_info"), handle, "product_name") or "AMD GPU")

    def _kfd_info(self, handle: Any) -> dict[str, Any]:
        """``amdsmi_get_gpu_kfd_info`` (6.3+): the partition id and KFD node id; {} where it cannot answer."""
        fn = self._am_fn("amdsmi_get_gpu_kfd_info")
        if fn is None:
            return {}
        try:
            value = fn(handle)
        except Exception as exc:  # a fact left out never stops the start
            log.debug("amdsmi call failed at start-up", extra=kv(call="amdsmi_get_gpu_kfd_info", err=typed(exc)))
            return {}
        return value if isinstance(value, dict) else {}

    def _xcds(self, handle: Any) -> int:
        text = self._text(self._am_fn("amdsmi_get_gpu_xcd_counter"), handle)                        # 6.4+
        return int(text) if text.isdigit() and int(text) > 0 else 1

    # -- every poll ---------------------------------------------------------------------
    def _call(self, proc: _Processor, name: str, failed: list[str], fn: Any, *args: Any) -> Any:
        am = self._am
        assert am is not None
        if fn is None or name in proc.unsupported:
            return None
        try:
            return fn(proc.handle, *args)
        except am.AmdSmiLibraryException as exc:
            code = exc.get_error_code()
            if code in self._unsupported:
                proc.unsupported.add(name)
                log.info("call not supported; not asked again", extra=kv(uuid=proc.uuid, call=name))
                return None
            if name == "processes" and code == self._no_data:
                return []           # no process on it
            failed.append(name)
            log.debug("amdsmi call failed", extra=kv(uuid=proc.uuid, call=name, err=_one_line(exc)))
        except Exception as exc:  # another AmdSmiException, or a library bug: this call only, counted
            failed.append(name)
            log.debug("amdsmi call failed", extra=kv(uuid=proc.uuid, call=name, err=typed(exc)))
        return None

    def _usage(self, proc: _Processor, failed: list[str]) -> tuple[tuple[int, ...] | None, dict[int, float],
                                                                   float | None]:
        """A processor's PIDs (None when they cannot be read), their graphics-engine ns since the last read
        and its graphics activity (0-1)."""
        activity = self._call(proc, "utilization", failed, self._am_fn("amdsmi_get_gpu_activity"))
        ratio = percent_ratio(activity.get("gfx_activity")) if isinstance(activity, dict) else None
        listed = self._call(proc, "processes", failed, self._am_fn("amdsmi_get_gpu_process_list"))
        if listed is None:
            return None, {}, ratio
        pids, gfx = gfx_ns_by_pid(p for p in listed if isinstance(p, dict))
        weights = gfx_deltas(proc.gfx_ns, gfx)
        proc.gfx_ns = gfx
        return tuple(sorted(pids)), weights, ratio

    def read(self) -> list[GpuReading]:
        return [self._read_gpu(gpu) for gpu in self._gpus]

    def _read_gpu(self, gpu: _Gpu) -> GpuReading:
        am = self._am
        assert am is not None
        primary = gpu.processors[0]
        failed: list[str] = []
        count = self._call(primary, "energy", failed, am.amdsmi_get_energy_count)
        energy = energy_mj(count) if isinstance(count, dict) else None
        if count is not None and energy is None:
            failed.append("energy")     # an answer of a shape this code does not know: counted, never guessed
        power = self._call(primary, "power", failed, am.amdsmi_get_power_info)
        power_w = socket_power_watts(power) if isinstance(power, dict) else None
        limit_w = number(power.get("power_limit")) if isinstance(power, dict) else None
        usage = [self._usage(p, failed) for p in gpu.processors]
        weights = {pid: w for _, ws, _ in usage for pid, w in ws.items()}
        has_counter = "energy" not in primary.unsupported
        reading = GpuReading(
            info=gpu.info,
            timestamp=self._clock(),
            ok=energy is not None if has_counter else power_w is not None,
            energy_mj=energy,
            power_watts=power_w,
            power_limit_watts=limit_w if limit_w else None,
            process_sm_util=weights,
        )
        if len(gpu.processors) == 1:
            pids, _, ratio = usage[0]
            vram = self._call(primary, "memory", failed, self._am_fn("amdsmi_get_gpu_vram_usage"))
            used = number(vram.get("vram_used")) if isinstance(vram, dict) else None
            reading.pids, reading.utilization_ratio = pids, ratio
            reading.memory_used_bytes = int(used) * MB if used is not None else None
        else:
            reading.mig = tuple(
                MigInstance(gi_id=p.partition, profile=gpu.mode, slices=p.slices, uuid=p.uuid, activity=ratio,
                            pids=pids, kernel_devices=p.kernel_devices)
                for p, (pids, _, ratio) in zip(gpu.processors, usage, strict=True))
            reading.mig_slices = sum(p.slices for p in gpu.processors)
            known = [u[0] for u in usage if u[0] is not None]
            reading.pids = tuple(sorted({pid for pids in known for pid in pids})) if known else None
            reading.utilization_ratio = _mean_by_slices(reading.mig)
        reading.failed_calls = tuple(failed)
        return reading

    def close(self) -> None:
        if self._am is not None and self._gpus:
            try:
                self._am.amdsmi_shut_down()
            except Exception as exc:  # shutting down: nothing left to protect
                log.debug("amdsmi shut down failed", extra=kv(err=typed(exc)))


def _whole(value: Any) -> int | None:
    """A non-negative integer fact (a partition or node id), or None for "N/A" and other non-numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    text = str(value).strip() if value is not None else ""
    return int(text) if text.isdigit() else None


def _ordered(members: list[tuple[int, _Processor, str]]) -> tuple[list[_Processor], str]:
    """One physical GPU's processors in partition id order (enumeration order where the library has no ids),
    numbered 0, 1, ... where it has none; and the GPU's model."""
    members.sort(key=lambda m: (int(m[1].partition) if m[1].partition.isdigit() else 1 << 30, m[0]))
    procs = [p for _, p, _ in members]
    if len({p.partition for p in procs}) < len(procs) or "" in {p.partition for p in procs}:
        for n, p in enumerate(procs):     # no ids, or ids that repeat: number them in enumeration order
            p.partition = str(n)
    return procs, members[0][2]


def _name_devices(gpus: list[list[_Processor]]) -> int:
    """Set each processor's kernel_devices: the PCI address for a GPU's first processor (the PCI device itself:
    the whole GPU in SPX, partition 0 otherwise), and the device holding its render node. A name two processors
    share would charge one's pods to the other: it is left out, with a warning. Returns how many have a name."""
    for procs in gpus:
        for n, p in enumerate(procs):
            names = [p.bdf] if n == 0 and p.bdf else []
            names += [p.render_device] if p.render_device else []
            p.kernel_devices = tuple(dict.fromkeys(names))
    uses = collections.Counter(name for procs in gpus for p in procs for name in p.kernel_devices)
    shared = sorted(name for name, k in uses.items() if k > 1)
    if shared:
        log.warning("device names shared by several GPUs or partitions are left out: device plugin allocations "
                    "naming them are not charged", extra=kv(names=",".join(shared)))
        for procs in gpus:
            for p in procs:
                p.kernel_devices = tuple(n for n in p.kernel_devices if n not in shared)
    return sum(1 for procs in gpus for p in procs if p.kernel_devices)


def _mean_by_slices(instances: tuple[MigInstance, ...]) -> float | None:
    """The board's utilisation from its partitions': their mean weighted by XCDs, where every one reports it."""
    if not instances or any(i.activity is None for i in instances):
        return None
    return sum(i.activity * i.slices for i in instances if i.activity is not None) / sum(i.slices for i in instances)


def _one_line(exc: BaseException) -> str:
    """amdsmi's exceptions print as "Error code:\\n\\t2 | AMDSMI_STATUS_...": one line for logs and messages."""
    return " ".join(str(exc).split()) or type(exc).__name__
