"""The report as typed, frozen records: one class per object of report-v1.schema.json (the JSON contract of
docs/reports.md), built by compute.py and read by every format.

Field names are the JSON keys, in the JSON's order; `Report.to_dict()` is the JSON report and
`Report.from_dict()` reads one back (record.py). Some keys say less than they mean and cannot be renamed without
a new schema version: `energy_kwh` is GPU energy only wherever it appears beside `cpu_energy_kwh` (the jobs' own
GPU energy, no idle share, no PUE); `*_pct` fields are fractions (0.25 is 25 %), not percentages. The field
comments say what each number is.

Lists are tuples (the records are frozen); `to_dict` writes them as JSON arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .record import Record, flattened, optional

SCHEMA_VERSION = 1
NOT_IN_LEDGER = "(not in the job ledger)"


@dataclass(frozen=True, kw_only=True)
class ReportWindow(Record):
    """The UTC window (`window`), or the one before it (`previous`)."""

    start: str                       # ISO 8601 UTC, "...Z"
    end: str                         # exclusive
    label: str | None                # "2026-10" for a calendar month, None for a --start/--end window
    hours: float


# -- method ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class EmbodiedRate(Record):
    """The amortised embodied emissions of one (cluster, GPU model) and where the figure came from."""

    cluster: str | None              # None only for a manual phase without a cluster (never in method.embodied.rates)
    model: str                       # "unknown model" when the GPU reported none
    kgco2eq_per_gpu: float           # manufacturing footprint of one GPU
    lifetime_years: float
    utilisation: float
    kg_per_gpu_hour: float           # kgco2eq_per_gpu / (lifetime hours x utilisation)
    source: str


@dataclass(frozen=True, kw_only=True)
class Embodied(Record):
    lifetime_years: float
    utilisation: float
    default_kgco2eq_per_gpu: float
    source: str                      # of the default per-GPU figure
    rates: tuple[EmbodiedRate, ...]


@dataclass(frozen=True, kw_only=True)
class Method(Record):
    layers_selected: tuple[str, ...]  # the layers in the headline, in LAYERS order (idle only under pro-rata)
    idle_policy: str                  # "pro-rata" or "separate"
    statement: str                    # the method in one paragraph
    embodied: Embodied


# -- phases ----------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class PhaseGpu(Record):
    """A GPU model of a phase (`phases[].hardware`)."""

    model: str
    gpus: int                        # distinct GPUs measured; declared GPUs for an estimated phase
    gpu_hours: float


@dataclass(frozen=True, kw_only=True)
class PhaseCpu(Record):
    """A CPU model of a phase (`phases[].cpu_hardware`)."""

    model: str                       # as /proc/cpuinfo names it
    sockets: int                     # distinct sockets with RAPL energy; 0 for an estimated phase
    hosts: int


@dataclass(frozen=True, kw_only=True)
class PhaseCluster(Record):
    """Where a phase ran: one cluster (and region/zone) of it."""

    cluster: str
    provider: str                    # "aws", "gcp", "azure", "onprem", ...
    region: str
    zone: str | None                 # None when the cluster has no known grid zone
    pue: float | None
    pue_known: bool                  # False: the config gives no PUE for the cluster and 1.0 was applied
    energy_kwh: float                # GPU energy of the phase's jobs in this cluster
    cpu_energy_kwh: float | None = optional()   # their own host energy
    intensity_g_per_kwh: float       # energy-weighted over that GPU and host energy


@dataclass(frozen=True, kw_only=True)
class LayerFigures(Record):
    """One accounting layer's energy and emissions (`energyEmissions`)."""

    energy_kwh: float
    emissions_kg: float


@dataclass(frozen=True, kw_only=True)
class CpuLayer(LayerFigures):
    """The cpu layer: the jobs' own host energy (RAPL package + DRAM)."""

    package_kwh: float | None = optional()
    dram_kwh: float | None = optional()
    cpu_hours: float | None = optional()    # CPU time, core-hours


@dataclass(frozen=True, kw_only=True)
class IdleLayer(LayerFigures):
    """The idle layer: the share of idle GPU energy, plus the host idle share when the cpu layer is selected."""

    gpu_energy_kwh: float | None = optional()
    cpu_energy_kwh: float | None = optional()   # 0 when the cpu layer is not selected


@dataclass(frozen=True, kw_only=True)
class EmbodiedLayer(Record):
    energy_kwh: None = None          # embodied emissions have no energy: always null
    emissions_kg: float
    gpu_hours: float


@dataclass(frozen=True, kw_only=True)
class PhaseLayers(Record):
    """Every layer of a phase, selected or not (`phases[].layers`; `emissions_kg` of the phase sums the selected)."""

    gpu: LayerFigures
    cpu: CpuLayer | None = optional()
    idle: IdleLayer
    pue: LayerFigures                # (PUE - 1) x the GPU (and, with the cpu layer, host) energy of the headline
    embodied: EmbodiedLayer

    def layer(self, name: str) -> LayerFigures | EmbodiedLayer | None:
        """The layer called `name` (one of config.LAYERS); None for a cpu layer an older report lacks."""
        value = getattr(self, name)
        assert value is None or isinstance(value, LayerFigures | EmbodiedLayer)
        return value


@dataclass(frozen=True, kw_only=True)
class Phase(Record):
    """One block of the report: a measured phase, or a group of manual phases (label "estimated (TDP)")."""

    phase: str
    label: str                       # "measured" or "estimated (TDP)"
    title: str
    hardware: tuple[PhaseGpu, ...]
    cpu_hardware: tuple[PhaseCpu, ...] | None = optional()
    hardware_text: str               # "2 Intel(R) Xeon(R) Gold 6248 CPUs, 4 NVIDIA A100-SXM4-80GB GPUs"
    gpu_hours: float
    cpu_hours: float | None = optional()       # CPU time of the phase's jobs, core-hours
    wall_clock_hours: float | None   # hours with at least one of its jobs running; None: unknown (estimates)
    jobs: int
    clusters: tuple[PhaseCluster, ...]
    provider_text: str
    region_text: str
    energy_kwh: float                # the phase's own GPU energy only (layer gpu), not the headline's energy
    cpu_energy_kwh: float | None = optional()  # its own host energy (layer cpu)
    cpu_package_kwh: float | None = optional()
    cpu_dram_kwh: float | None = optional()
    intensity_g_per_kwh: float       # energy-weighted over its own GPU and host energy
    emissions_kg: float              # the headline: sum of the selected layers
    layers: PhaseLayers
    sources: tuple[str, ...]         # file:line of the manual phases behind an estimated block


# -- total and layers ------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class GpuHardware(Record):
    """A GPU model of the whole report (`total.hardware`): distinct GPUs, each counted once."""

    model: str
    gpus: int
    measured: bool                   # False: declared by a manual phase


@dataclass(frozen=True, kw_only=True)
class CpuHardware(Record):
    model: str
    sockets: int
    hosts: int
    measured: bool


@dataclass(frozen=True, kw_only=True)
class Total(Record):
    energy_kwh: float                # GPU energy of the jobs only; the layers' energy is facility_energy_kwh
    emissions_kg: float              # the headline: sum of the selected layers
    gpu_hours: float
    cpu_energy_kwh: float | None = optional()  # the jobs' own host energy (RAPL package + DRAM)
    cpu_package_kwh: float | None = optional()
    cpu_dram_kwh: float | None = optional()
    cpu_hours: float | None = optional()       # CPU time of the jobs, core-hours
    intensity_g_per_kwh: float       # energy-weighted over the jobs' own GPU and host energy
    facility_energy_kwh: float       # energy of the selected layers (GPU, CPU, idle share, PUE overhead)
    hardware: tuple[GpuHardware, ...]
    cpu_hardware: tuple[CpuHardware, ...] | None = optional()


@dataclass(frozen=True, kw_only=True)
class LayerRow(Record):
    """One row of the accounting-layers table (`layers`)."""

    layer: str                       # one of config.LAYERS
    title: str
    energy_kwh: float | None         # None for embodied
    emissions_kg: float
    included: bool                   # in the headline
    method: str
    package_kwh: float | None = optional()       # cpu row: of which RAPL package
    dram_kwh: float | None = optional()          # cpu row: of which RAPL DRAM
    gpu_energy_kwh: float | None = optional()    # idle row: the GPU part
    cpu_energy_kwh: float | None = optional()    # idle row: the host part


@dataclass(frozen=True, kw_only=True)
class Equivalences(Record):
    miles_driven: float
    homes_energy_years: float
    kg_per_mile: float
    kg_per_home_year: float
    source: str
    edition: str
    sentence: str                    # "roughly equal to 3,169 miles driven by ..."


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
class DataQuality(Record):
    energy: EnergyShares
    cpu_energy: CpuEnergyShares | None = optional()
    intensity: IntensityShares
    gaps: Gaps
    gpu_counters: GpuCounters
    jobs_without_telemetry: int      # ledger jobs that ran in the window with no measured energy
    clusters_without_pue: tuple[str, ...]
    rapl: Rapl | None = optional()
    warnings: tuple[str, ...]
    poor: bool


# -- what-if, series -------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class WhatIfOption(Record):
    cluster: str
    provider: str
    region: str
    zone: str
    pue: float
    emissions_kg: float
    intensity_g_per_kwh: float
    hourly_share: float              # of the energy priced with hourly intensity there
    delta_kg: float                  # emissions_kg - actual_kg: negative where it is cleaner

    def same_place(self, other: WhatIfOption | None) -> bool:
        return other is not None and all(getattr(self, k) == getattr(other, k)
                                         for k in ("cluster", "region", "zone", "provider"))


@dataclass(frozen=True, kw_only=True)
class WhatIf(Record):
    actual_kg: float                 # the operational emissions (no embodied) of the measured hours
    options: tuple[WhatIfOption, ...]
    best: WhatIfOption | None        # the option with the lowest emissions; None without options
    saving_kg: float
    saving_pct: float                # a fraction of actual_kg
    note: str


@dataclass(frozen=True, kw_only=True)
class Day(Record):
    date: str                        # YYYY-MM-DD (UTC)
    energy_kwh: float                # GPU energy of the jobs
    cpu_energy_kwh: float | None = optional()
    emissions_kg: float              # the headline's layers


@dataclass(frozen=True, kw_only=True)
class Hour(Record):
    hour: str
    cluster: str
    zone: str
    power_w: float                   # the scope's GPU power: mean over the hour
    cpu_power_w: float | None = optional()
    intensity_g_per_kwh: float


# -- fleet (all-projects report) -------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ProjectPhase(Record):
    phase: str
    energy_kwh: float                # GPU energy
    cpu_energy_kwh: float | None = optional()
    emissions_kg: float
    gpu_hours: float
    cpu_hours: float | None = optional()


@dataclass(frozen=True, kw_only=True)
class ProjectRow(Record):
    project: str                     # NOT_IN_LEDGER for jobs the ledger does not know
    energy_kwh: float                # GPU energy
    cpu_energy_kwh: float | None = optional()
    emissions_kg: float
    gpu_hours: float
    cpu_hours: float | None = optional()
    previous_emissions_kg: float | None   # None: no data in the window before
    change_pct: float | None         # a fraction: (now - before) / before
    phases: tuple[ProjectPhase, ...]


@dataclass(frozen=True, kw_only=True)
class ClusterRow(Record):
    """A cluster of the fleet, straight from the results (every job, in the ledger or not, and idle)."""

    cluster: str
    provider: str
    region: str
    zone: str | None
    pue: float
    gpus: int
    energy_kwh: float                # all GPU energy: jobs and idle
    job_energy_kwh: float
    idle_energy_kwh: float
    idle_share: float
    cpu_sockets: int | None = optional()
    cpu_energy_kwh: float | None = optional()
    cpu_job_energy_kwh: float | None = optional()
    cpu_idle_energy_kwh: float | None = optional()
    cpu_idle_share: float | None = optional()
    intensity_g_per_kwh: float
    emissions_kg: float              # GPU and host energy, including PUE


@dataclass(frozen=True, kw_only=True)
class TopJob(Record):
    cluster: str
    job_id: str
    project: str
    phase: str
    user: str                        # "" when unknown
    gpu_hours: float
    cpu_hours: float | None = optional()
    energy_kwh: float                # GPU energy
    cpu_energy_kwh: float | None = optional()
    emissions_kg: float


@dataclass(frozen=True, kw_only=True)
class Previous(ReportWindow):
    """The window before, with its totals (the month before, or the same length just before)."""

    energy_kwh: float                # GPU energy
    cpu_energy_kwh: float | None = optional()
    emissions_kg: float


@dataclass(frozen=True, kw_only=True)
class Change(Record):
    energy_pct: float                # fractions: (now - before) / before
    emissions_pct: float


@dataclass(frozen=True, kw_only=True)
class CpuReconciliation(Record):
    """The fleet's host CPU energy (RAPL package + DRAM), split as its GPU energy is."""

    fleet_energy_kwh: float
    projects_energy_kwh: float
    not_in_ledger_kwh: float
    idle_apportioned_kwh: float
    idle_unapportioned_kwh: float
    note: str


@dataclass(frozen=True, kw_only=True)
class Reconciliation(Record):
    """The fleet's GPU energy = projects' jobs + jobs not in the ledger + idle apportioned + idle not apportioned."""

    fleet_energy_kwh: float
    projects_energy_kwh: float
    not_in_ledger_kwh: float
    idle_apportioned_kwh: float
    idle_unapportioned_kwh: float
    note: str
    cpu: CpuReconciliation | None = optional()
    gpu_counters: GpuCounters        # the same check as data_quality.gpu_counters (fleet-wide)


@dataclass(frozen=True, kw_only=True)
class FleetSections(Record):
    """The keys only the all-projects report has (kind "fleet"), written at the top level of the report."""

    projects: tuple[ProjectRow, ...]
    clusters: tuple[ClusterRow, ...]
    top_jobs: tuple[TopJob, ...]
    previous: Previous | None        # None: no data in the window before
    change: Change | None
    reconciliation: Reconciliation


# -- the report ------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Report(Record):
    schema_version: int = SCHEMA_VERSION
    kind: str                        # "project" or "fleet"
    title: str
    project: str | None              # None for the all-projects report
    generated_at: str
    window: ReportWindow
    method: Method
    phases: tuple[Phase, ...]
    total: Total
    layers: tuple[LayerRow, ...]
    equivalences: Equivalences
    data_quality: DataQuality
    whatif: WhatIf
    daily: tuple[Day, ...]
    hourly: tuple[Hour, ...]
    fleet: FleetSections | None = flattened()   # kind "fleet" only


def as_report(value: Report | Mapping[str, Any]) -> Report:
    """A Report, or a report dict (JSON, schema_version 1) read into one."""
    if isinstance(value, Report):
        return value
    if isinstance(value, Mapping):
        return Report.from_dict(value)
    raise TypeError(f"report must be a Report or a mapping, got {type(value).__name__}")
