"""What every GPU backend returns, and the errors it may raise.

A backend turns one hardware source (NVML, a dcgm-exporter endpoint, a recorded
trace) into a list of GpuReading per poll. Per-GPU faults are reported inside
the readings (``ok=False``, ``failed_calls``); only a whole-backend failure
(endpoint down, garbage page) raises BackendError.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class BackendUnavailable(Exception):
    """The backend cannot start at all (e.g. NVML library missing). Fatal at start-up."""


class BackendError(Exception):
    """One read of the whole backend failed; the next poll tries again."""


@dataclass(frozen=True)
class GpuInfo:
    """Static facts about one GPU; ``index`` is the string used in the ``gpu`` label."""

    index: str
    uuid: str
    model: str = ""
    driver: str = ""
    # True when the hardware reports a cumulative energy counter (Volta and newer).
    has_energy_counter: bool = True
    # The kernel's names of this GPU's device, lower case, by which AMD's device plugin allocates it (its PCI
    # address "0000:0c:00.0"); empty where the backend does not read them (nvml, dcgm, replay: NVIDIA's plugins
    # allocate by UUID or index) and for a partitioned GPU, whose partitions carry theirs (MigInstance).
    kernel_devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class MigInstance:
    """One MIG GPU instance of a board in MIG mode: what the split of the board's energy needs (docs/exporter.md,
    "MIG")."""

    gi_id: str                   # GPU instance id, as dcgm-exporter's GPU_I_ID and the `<gpu>.<gi>` mapping files
    profile: str = ""            # e.g. "1g.10gb" (dcgm-exporter's GPU_I_PROFILE)
    slices: int = 1              # compute slices (the "1g" of 1g.10gb; 7 make a whole A100/H100)
    uuid: str = ""               # the instance's MIG-... UUID (nvml; what device plugins allocate)
    # Graphics-engine activity of the instance over the last interval, 0-1 (DCGM_FI_PROF_GR_ENGINE_ACTIVE);
    # None where the backend cannot read it (NVML has no per-instance utilisation).
    activity: float | None = None
    # PIDs of compute processes on this instance; None when the backend cannot see them.
    pids: tuple[int, ...] | None = None
    # The kernel's names of this partition's device, as GpuInfo.kernel_devices (amdsmi: the GPU's PCI address for
    # the first compute partition, "amdgpu_xcp_<n>" for the others).
    kernel_devices: tuple[str, ...] = ()


def id_order(text: str) -> tuple[int, str]:
    """Sort key of a GPU index or GPU instance id: numeric ids in numeric order ("2" before "13"), others after."""
    return (int(text), text) if text.isdigit() else (1 << 30, text)


def instance_key(gpu_index: str, gi_id: str) -> str:
    """The Assignment key of one MIG instance: `<gpu>.<gi>`, as the mapping directory names its files."""
    return f"{gpu_index}.{gi_id}"


@dataclass
class GpuReading:
    info: GpuInfo
    # Time (seconds) at which the reading was taken; only differences are used (interval lengths, the held
    # time of jobs). Monotonic for hardware; the replay backend's trace clock, which drives its energy.
    timestamp: float
    # False when the essential reading (energy counter, or power without one) failed.
    ok: bool = True
    # Hardware energy counter in millijoules since driver load; None if absent or failed.
    energy_mj: int | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    utilization_ratio: float | None = None
    memory_used_bytes: int | None = None
    # PIDs of compute processes on this GPU; None when the backend cannot see processes.
    pids: tuple[int, ...] | None = None
    # Summed SM utilisation (percent-samples) per PID since the previous read.
    process_sm_util: dict[int, float] = field(default_factory=dict)
    # Names of the calls that failed during this read (counted per GPU and call).
    failed_calls: tuple[str, ...] = ()
    # The board's MIG instances when it is in MIG mode (empty otherwise); `mig_slices` its compute slices in all
    # (7 on an A100/H100), the slices no instance holds being charged to idle.
    mig: tuple[MigInstance, ...] = ()
    mig_slices: int = 0


class GpuBackend(Protocol):
    name: str

    def open(self) -> None:
        """Initialise; raise BackendUnavailable with a one-line, actionable reason."""

    def read(self) -> list[GpuReading]:
        """Read every GPU once; raise BackendError only if nothing could be read."""

    def close(self) -> None: ...
