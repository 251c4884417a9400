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


@dataclass
class Proc:
    pid: int
    usedGpuMemory: int = 1 << 30  # noqa: N815 - NVML field name


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
    m.nvmlDeviceGetUUID = lambda h: check(h, "uuid").uuid
    m.nvmlDeviceGetName = lambda h: (check(h, "name"), "NVIDIA H100 80GB HBM3")[1]

    def energy(h: int) -> int:
        g = check(h, "energy")
        if not g.has_energy:
            raise NVMLError_NotSupported()
        return g.energy_mj

    m.nvmlDeviceGetTotalEnergyConsumption = energy
    m.nvmlDeviceGetPowerUsage = lambda h: check(h, "power").power_mw
    m.nvmlDeviceGetEnforcedPowerLimit = lambda h: (check(h, "power_limit"), 700000)[1]
    m.nvmlDeviceGetUtilizationRates = lambda h: (check(h, "utilization"), types.SimpleNamespace(gpu=98, memory=30))[1]
    m.nvmlDeviceGetMemoryInfo = lambda h: (check(h, "memory"), types.SimpleNamespace(used=5621219328))[1]
    m.nvmlDeviceGetComputeRunningProcesses = lambda h: [Proc(p) for p in check(h, "processes").procs]

    def process_util(h: int, last_seen_us: int) -> list[UtilSample]:
        g = check(h, "process_utilization")
        new = [s for s in g.util_samples if s.timeStamp > last_seen_us]
        if not new:
            raise NVMLError_NotFound()
        return new

    m.nvmlDeviceGetProcessUtilization = process_util
    return m
