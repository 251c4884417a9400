"""The records of the sections only the all-projects report has (`projects`, `clusters`, `top_jobs`, `previous`,
`change`, `reconciliation`; see types/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..record import Record, optional
from .quality import GpuCounters
from .sections import ReportWindow

NOT_IN_LEDGER = "(not in the job ledger)"


# -- fleet (all-projects report) -------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class ProjectPhase(Record):
    phase: str
    energy_kwh: float                # GPU energy
    cpu_energy_kwh: float | None = optional()
    emissions_kg: float
    location_kg: float | None = optional()   # --scope2-basis market: the location-based figure (absent: location)
    gpu_hours: float
    cpu_hours: float | None = optional()


@dataclass(frozen=True, kw_only=True)
class ProjectRow(Record):
    project: str                     # NOT_IN_LEDGER for jobs the ledger does not know
    energy_kwh: float                # GPU energy
    cpu_energy_kwh: float | None = optional()
    emissions_kg: float
    location_kg: float | None = optional()   # --scope2-basis market: the location-based figure (absent: location)
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
    # the node residual (BMC node energy less GPU boards and RAPL) attributed in the cluster: jobs and node idle;
    # present for a cluster with node (BMC) data in the window
    node_energy_kwh: float | None = optional()
    node_job_energy_kwh: float | None = optional()
    node_idle_energy_kwh: float | None = optional()
    node_idle_share: float | None = optional()
    intensity_g_per_kwh: float
    emissions_kg: float              # GPU and host energy, including PUE (not the node residual)


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
    location_kg: float | None = optional()   # --scope2-basis market: the location-based figure (absent: location)


@dataclass(frozen=True, kw_only=True)
class Previous(ReportWindow):
    """The window before, with its totals (the month before, or the same length just before)."""

    energy_kwh: float                # GPU energy
    cpu_energy_kwh: float | None = optional()
    emissions_kg: float
    location_kg: float | None = optional()   # --scope2-basis market: the location-based figure (absent: location)


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
