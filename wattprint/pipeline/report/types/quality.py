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
class NodeIssue(Record):
    """A node of the scope whose BMC did not read all of its hours, or read less than its GPUs and RAPL."""

    cluster: str
    hostname: str
    hours: int                       # its node-hours in the report
    hours_without_bmc: int           # of them without BMC data: the node layer is absent there
    deficit_hours: int               # the BMC read less than the GPUs and RAPL together: residual counted as 0
    below_gpu_hours: int             # of them, less than the GPU boards alone
    deficit_kwh: float               # GPU + RAPL - BMC over those hours
    deficit_at: tuple[str, ...]      # the first deficit hours (UTC hour starts), at most node_checks.MAX_LISTED


@dataclass(frozen=True, kw_only=True)
class NodePower(Record):
    """The node layer's inputs over the report's node-hours (the BMC's whole-node energy, report/node_checks.py).
    Over the hours with BMC data: node_energy_kwh == gpu_energy_kwh + rapl_energy_kwh + residual_kwh - deficit_kwh."""

    nodes: int
    nodes_with_bmc: int
    node_hours: int
    bmc_hours: int                   # node-hours with BMC data
    hours_without_bmc: int
    power_integrated_hours: int      # BMC hours read from a power gauge (integrated), not an energy counter
    power_integrated_share: float    # of the node energy
    node_energy_kwh: float
    gpu_energy_kwh: float
    rapl_energy_kwh: float
    residual_kwh: float              # attributed to the jobs and node idle
    deficit_kwh: float
    deficit_hours: int
    below_gpu_hours: int
    hours_without_rapl: int          # BMC hours without RAPL: their residual holds the CPUs' energy too
    issues: tuple[NodeIssue, ...]    # the nodes with deficit hours or hours without BMC, at most MAX_LISTED


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
    node: NodePower | None = optional()     # present when the store has node (BMC) data in the window
    warnings: tuple[str, ...]
    poor: bool
