"""The records of the report's common sections: window, method, phases, total, layers table, equivalences,
what-if, daily and hourly series (see types/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..record import Record, optional


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
    node_energy_kwh: float | None = optional()  # node idle's share: only when the node layer is selected


@dataclass(frozen=True, kw_only=True)
class NodeLayer(LayerFigures):
    """The node layer: the jobs' share of the node residual (the BMC's whole-node energy less the GPU boards and
    RAPL, per node-hour; fct_node_hour.sql)."""


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
    node: NodeLayer | None = optional()     # present when the store has node (BMC) data in the window
    idle: IdleLayer
    pue: LayerFigures                # (PUE - 1) x the GPU (and, with the cpu layer, host) energy of the headline
    embodied: EmbodiedLayer

    def layer(self, name: str) -> LayerFigures | EmbodiedLayer | None:
        """The layer called `name` (one of config.LAYERS); None for a cpu layer an older report lacks, and for a node
        layer without node data."""
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
    intensity_g_per_kwh: float       # energy-weighted over its own GPU and host energy (grid: location-based)
    emissions_kg: float              # the headline: sum of the selected layers (+ the market adjustment, market basis)
    location_kg: float | None = optional()   # --scope2-basis market: the location-based figure (absent: location)
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
    emissions_kg: float              # the headline: sum of the selected layers (+ the market adjustment, market basis)
    location_kg: float | None = optional()   # --scope2-basis market: the location-based figure (absent: location)
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
    node_energy_kwh: float | None = optional()   # idle row: the node part (only with the node layer selected)


@dataclass(frozen=True, kw_only=True)
class Equivalences(Record):
    miles_driven: float
    homes_energy_years: float
    kg_per_mile: float
    kg_per_home_year: float
    source: str
    edition: str
    sentence: str                    # "roughly equal to 3,169 miles driven by ..."

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
    location_kg: float | None = optional()   # --scope2-basis market: the location-based figure (absent: location)


@dataclass(frozen=True, kw_only=True)
class Hour(Record):
    hour: str
    cluster: str
    zone: str
    power_w: float                   # the scope's GPU power: mean over the hour
    cpu_power_w: float | None = optional()
    intensity_g_per_kwh: float
