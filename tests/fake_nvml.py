"""A module-level stand-in for pynvml, for machines with no GPU.

``make_fake_nvml()`` returns a fresh module object with pynvml's function
names and error classes. Each fake GPU plays a sequence of real H100 samples
(energy counter, power) advanced by ``advance()``; ``inject(gpu, call, err)``
makes one call on one GPU raise an NVMLError subclass until cleared.
"""

from __future__ import annotations

import csv
import types
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRACE = REPO / "wattprint" / "exporter" / "data" / "h100_trace.csv"

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15


class NVMLError(Exception):
    value = 999

    def __str__(self) -> str:
        return type(self).__name__.removeprefix("NVMLError_")


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's own spelling
    value = NVML_ERROR_NOT_SUPPORTED


class NVMLError_NotFound(NVMLError):  # noqa: N801
    value = NVML_ERROR_NOT_FOUND


class NVMLError_GpuIsLost(NVMLError):  # noqa: N801
    value = NVML_ERROR_GPU_IS_LOST


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N801
    value = NVML_ERROR_LIBRARY_NOT_FOUND


class NVMLError_NoPermission(NVMLError):  # noqa: N801
    value = 4


NO_INSTANCE = 0xFFFFFFFF     # NVML's "not available" instance id: a process on a board not in MIG mode


@dataclass
class Proc:
    pid: int
    usedGpuMemory: int = 1 << 30  # noqa: N815 - NVML field name
    gpuInstanceId: int = NO_INSTANCE  # noqa: N815
    computeInstanceId: int = NO_INSTANCE  # noqa: N815


@dataclass
class FakeMig:
    """One MIG GPU instance (with one compute instance) of a fake board."""

    gi: int
    uuid: str
    slices: int
    memory_mb: int
    procs: list[int] = field(default_factory=list)


@dataclass
class UtilSample:
    pid: int
    timeStamp: int  # noqa: N815
    smUtil: int  # noqa: N815
    memUtil: int = 0  # noqa: N815


@dataclass
class FakeGpu:
    uuid: str
    energy_mj: int
    power_mw: int
    procs: list[int] = field(default_factory=list)
    util_samples: list[UtilSample] = field(default_factory=list)
    errors: dict[str, type[NVMLError]] = field(default_factory=dict)
    has_energy: bool = True
    # MIG: None = the board cannot do MIG (NotSupported), 0 = disabled, 1 = enabled with the instances in `mig`
    mig_mode: int | None = None
    mig: list[FakeMig] = field(default_factory=list)
    profile_names_denied: bool = False      # the GPU-instance calls refused (NoPermission), as without privileges


def load_trace_rows(path: Path = TRACE) -> list[tuple[int, int]]:
    with path.open() as fh:
        return [(int(r["energy_mj"]), int(r["power_mw"])) for r in csv.DictReader(fh)]


def make_fake_nvml(gpus: int = 2, init_error: type[NVMLError] | None = None) -> types.ModuleType:
    rows = load_trace_rows()
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    m.NVMLError_NotSupported = NVMLError_NotSupported
    m.NVMLError_NotFound = NVMLError_NotFound
    m.NVMLError_GpuIsLost = NVMLError_GpuIsLost
    m.NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    m.NVMLError_NoPermission = NVMLError_NoPermission
    m.NVML_DEVICE_MIG_DISABLE = 0
    m.NVML_DEVICE_MIG_ENABLE = 1
    m.rows = rows
    m.step = 0
    m.gpus = [
        FakeGpu(uuid=f"GPU-fa4e0000-0000-4000-8000-00000000000{i}", energy_mj=rows[0][0], power_mw=rows[0][1])
        for i in range(gpus)
    ]
    m.calls = {}

    def check(h: int, call: str) -> FakeGpu:
        m.calls[call] = m.calls.get(call, 0) + 1
        g = m.gpus[h]
        err = g.errors.get(call) or g.errors.get("*")
        if err is not None:
            raise err()
        return g

    def advance(n: int = 1) -> None:
        """Move every GPU n trace rows on (the energy counter keeps rising past the end)."""
        for _ in range(n):
            m.step += 1
            e_prev, _ = rows[(m.step - 1) % len(rows)]
            e_now, p_now = rows[m.step % len(rows)]
            de = e_now - e_prev if e_now >= e_prev else p_now // 10  # wrap: ~0.1 s of power
            for g in m.gpus:
                g.energy_mj += de
                g.power_mw = p_now

    def inject(gpu: int, call: str, err: type[NVMLError] | None) -> None:
        if err is None:
            m.gpus[gpu].errors.pop(call, None)
        else:
            m.gpus[gpu].errors[call] = err

    m.advance = advance
    m.inject = inject

    def nvmlInit() -> None:  # noqa: N802
        if init_error is not None:
            raise init_error()

    m.nvmlInit = nvmlInit
    m.nvmlShutdown = lambda: None
    m.nvmlDeviceGetCount = lambda: len(m.gpus)
    m.nvmlSystemGetDriverVersion = lambda: "580.159.04"
    m.nvmlDeviceGetHandleByIndex = lambda i: i
    def uuid(h: int | tuple[str, int, int]) -> str:
        if isinstance(h, tuple):
            return mig_of(h).uuid
        return check(h, "uuid").uuid

    def mig_of(h: tuple[str, int, int]) -> FakeMig:
        _, board, i = h
        return check(board, "mig_devices").mig[i]

    m.nvmlDeviceGetUUID = uuid
    m.nvmlDeviceGetName = lambda h: (check(h, "name"), "NVIDIA H100 80GB HBM3")[1]

    def energy(h: int) -> int:
        g = check(h, "energy")
        if not g.has_energy:
            raise NVMLError_NotSupported()
        return g.energy_mj

    m.nvmlDeviceGetTotalEnergyConsumption = energy
    m.nvmlDeviceGetPowerUsage = lambda h: check(h, "power").power_mw
    m.nvmlDeviceGetEnforcedPowerLimit = lambda h: (check(h, "power_limit"), 700000)[1]
    def utilization(h: int) -> types.SimpleNamespace:
        if check(h, "utilization").mig_mode == 1:
            raise NVMLError_NotSupported()   # no board utilisation in MIG mode
        return types.SimpleNamespace(gpu=98, memory=30)

    m.nvmlDeviceGetUtilizationRates = utilization
    m.nvmlDeviceGetMemoryInfo = lambda h: (check(h, "memory"), types.SimpleNamespace(used=5621219328))[1]
    def processes(h: int) -> list[Proc]:
        g = check(h, "processes")
        return [Proc(p) for p in g.procs] + [Proc(p, gpuInstanceId=i.gi, computeInstanceId=0)
                                             for i in g.mig if g.mig_mode == 1 for p in i.procs]

    m.nvmlDeviceGetComputeRunningProcesses = processes

    def mig_mode(h: int) -> tuple[int, int]:
        g = check(h, "mig")
        if g.mig_mode is None:
            raise NVMLError_NotSupported()
        return (g.mig_mode, g.mig_mode)

    def mig_handle(h: int, i: int) -> tuple[str, int, int]:
        g = check(h, "mig_devices")
        if g.mig_mode != 1 or i >= len(g.mig):
            raise NVMLError_NotFound()
        return ("mig", h, i)

    m.nvmlDeviceGetMigMode = mig_mode
    m.nvmlDeviceGetMaxMigDeviceCount = lambda h: (check(h, "mig_devices"), 7)[1]
    m.nvmlDeviceGetMigDeviceHandleByIndex = mig_handle
    m.nvmlDeviceGetGpuInstanceId = lambda h: mig_of(h).gi
    # the profile names, as an H100 80GB's driver lists them (profile index -> id, name)
    profiles = {0: (0, "MIG 1g.10gb"), 1: (1, "MIG 2g.20gb"), 2: (2, "MIG 3g.40gb"), 3: (3, "MIG 4g.40gb"),
                4: (4, "MIG 7g.80gb")}

    def gi_by_id(h: int, gi: int) -> tuple[int, int]:
        g = check(h, "mig_devices")
        if g.profile_names_denied:
            raise NVMLError_NoPermission()
        if not any(i.gi == gi for i in g.mig):
            raise NVMLError_NotFound()
        return (h, gi)

    def gi_info(handle: tuple[int, int]) -> types.SimpleNamespace:
        h, gi = handle
        (inst,) = [i for i in m.gpus[h].mig if i.gi == gi]
        return types.SimpleNamespace(id=gi, profileId={1: 0, 2: 1, 3: 2, 4: 3, 7: 4}[inst.slices])

    def profile_info(h: int, index: int) -> types.SimpleNamespace:
        if index not in profiles:
            raise NVMLError_NotSupported()
        pid, name = profiles[index]
        return types.SimpleNamespace(id=pid, name=name.encode())

    m.nvmlDeviceGetGpuInstanceById = gi_by_id
    m.nvmlGpuInstanceGetInfo = gi_info
    m.nvmlDeviceGetGpuInstanceProfileInfo = profile_info
    m.nvmlDeviceGetAttributes = lambda h: types.SimpleNamespace(
        gpuInstanceSliceCount=mig_of(h).slices, computeInstanceSliceCount=mig_of(h).slices,
        memorySizeMB=mig_of(h).memory_mb)

    def process_util(h: int, last_seen_us: int) -> list[UtilSample]:
        g = check(h, "process_utilization")
        new = [s for s in g.util_samples if s.timeStamp > last_seen_us]
        if not new:
            raise NVMLError_NotFound()
        return new

    m.nvmlDeviceGetProcessUtilization = process_util
    return m
