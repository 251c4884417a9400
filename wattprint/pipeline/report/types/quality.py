"""The records of the data-quality section (`data_quality`; see types/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..record import Record, optional
from .shared_gpus import EqualShare

# -- data quality ----------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class EnergyShares(Record):
    """How the GPU energy was measured: shares (0..1) of the total GPU energy."""

    counter: float
    counter_across_gap: float
    power_integrated: float
    estimated: float                 # manual phases (TDP)


@dataclass(frozen=True, kw_only=True)
class CpuEnergyShares(Record):
    """How the host energy was measured: shares (0..1) of the jobs' own host energy."""

    counter: float
    counter_across_gap: float
    estimated: float


@dataclass(frozen=True, kw_only=True)
class IntensityShares(Record):
    """How the GPU and host energy was priced: shares (0..1), one per intensity quality."""

    hourly: float
    nearest_hour: float
    monthly_mean: float
    annual_default: float
    world_default: float
    declared: float                  # manual phases' own intensity


@dataclass(frozen=True, kw_only=True)
class Gaps(Record):
    """Telemetry gaps of the report's GPUs, per GPU (see gpu_checks.gaps)."""

    count: int
    hours: float                     # GPU-hours
    restarts: int                    # of them, ended in a counter restart


@dataclass(frozen=True, kw_only=True)
class CounterDifference(Record):
    """A GPU-hour whose priced energy differs from the GPU's hardware counter."""

    hour: str
    cluster: str
    hostname: str
    gpu: str
    uuid: str | None
    counter_kwh: float
    priced_kwh: float
    cause: str


@dataclass(frozen=True, kw_only=True)
class GpuCounters(Record):
    """The scope's GPU-hours priced against their hardware energy counters (see gpu_checks.counters)."""

    gpu_hours: int                   # GPU-hours with a counter, checked (a count)
    counter_kwh: float
    priced_kwh: float
    residual_kwh: float
    residual_jobs: int
    residual_to_jobs_kwh: float
    excess_kwh: float
    stepped_back_gpus: int
    unpriced_kwh: float
    two_source_gpus: int
    difference_gpu_hours: int
    difference_kwh: float
    differences: tuple[CounterDifference, ...]   # the largest, at most gpu_checks.MAX_LISTED


@dataclass(frozen=True, kw_only=True)
class RaplNode(Record):
    """A node of the scope without readable RAPL for all or part of the window."""

    cluster: str
    hostname: str
    reason: str
    samples: int
    readable_samples: int
    hours: int                       # hours with the scope's jobs on the node
    hours_without_rapl: int
    unreadable_share: float          # of the node's time
    gpu_energy_share: float          # of the report's measured GPU energy


@dataclass(frozen=True, kw_only=True)
class Rapl(Record):
    nodes: int
    nodes_without: int
    gpu_energy_share: float
    unreadable_gpu_energy_share: float
    without: tuple[RaplNode, ...]


@dataclass(frozen=True, kw_only=True)
class AmdExporter(Record):
    """What the scope's AMD device-metrics-exporter series held that was not priced as it stands (pipeline/amd.py,
    gpu_checks.amd_exporter); from the stored samples, so the months `wattprint compact` closed count nothing."""

    partitions: int                  # secondary partitions (gpu_partition_id not 0): their energy lines not priced
    partition_nodes: int
    unread_energy_gpus: int          # GPUs whose energy counter read 0 (the exporter's "unsupported"): no reading
    unread_energy_gpu_hours: int     # GPU-hours with such a sample
    unread_power_gpu_hours: int      # GPU-hours with a step at which every power gauge of the GPU read 0


@dataclass(frozen=True, kw_only=True)
class DataQuality(Record):
    energy: EnergyShares
    cpu_energy: CpuEnergyShares | None = optional()
    intensity: IntensityShares
    gaps: Gaps
    gpu_counters: GpuCounters
    jobs_without_telemetry: int      # ledger jobs that ran in the window with no measured energy
    clusters_without_pue: tuple[str, ...]
    rapl: Rapl | None = optional()
    equal_share: EqualShare | None = optional()
    amd_exporter: AmdExporter | None = optional()   # only where AMD device-metrics-exporter series are stored
    warnings: tuple[str, ...]
    poor: bool
