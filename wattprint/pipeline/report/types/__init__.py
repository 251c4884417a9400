"""The report as typed, frozen records: one class per object of report-v1.schema.json (the JSON contract of
docs/reports.md), built by compute.py and read by every format.

Field names are the JSON keys, in the JSON's order; `Report.to_dict()` is the JSON report and
`Report.from_dict()` reads one back (record.py). Some keys say less than they mean and cannot be renamed without
a new schema version: `energy_kwh` is GPU energy only wherever it appears beside `cpu_energy_kwh` (the jobs' own
GPU energy, no idle share, no PUE); `*_pct` fields are fractions (0.25 is 25 %), not percentages. The field
comments say what each number is.

Lists are tuples (the records are frozen); `to_dict` writes them as JSON arrays. The records live in three
modules by section (sections.py: window, method, phases, total, layers, equivalences, what-if, series; quality.py:
data quality; fleet.py: the all-projects report's sections) and are all imported from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..record import Record, flattened, optional
from .disclosure import AnnexXi, AnnexXiPhase, EsrsE1, Sci, SciRow
from .fleet import (
    NOT_IN_LEDGER,
    Change,
    ClusterRow,
    CpuReconciliation,
    FleetSections,
    Previous,
    ProjectPhase,
    ProjectRow,
    Reconciliation,
    TopJob,
)
from .marginal import Marginal, MarginalCluster, MarginalFigures, MarginalPhase, MarginalProject
from .quality import (
    AmdExporter,
    CounterDifference,
    CpuEnergyShares,
    DataQuality,
    EnergyShares,
    Gaps,
    GpuCounters,
    IntensityShares,
    NodeIssue,
    NodePower,
    Rapl,
    RaplNode,
)
from .scope2 import Scope2, Scope2Figures, Scope2Instrument, Scope2Phase, Scope2Project, Scope2ResidualMix, Scope2Use
from .sections import (
    CpuHardware,
    CpuLayer,
    Day,
    Embodied,
    EmbodiedLayer,
    EmbodiedRate,
    Equivalences,
    GpuHardware,
    Hour,
    IdleLayer,
    LayerFigures,
    LayerRow,
    Method,
    NodeLayer,
    Phase,
    PhaseCluster,
    PhaseCpu,
    PhaseGpu,
    PhaseLayers,
    ReportWindow,
    Total,
    WhatIf,
    WhatIfOption,
)
from .shared_gpus import EqualShare, HeldIdle, HeldIdleJob
from .timeshift import TimeShift, TimeShiftOption
from .uncertainty import Band, Bound, Uncertainty

SCHEMA_VERSION = 1


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
    uncertainty: Uncertainty | None = optional()   # low-high bands of the headline numbers (absent from older reports)
    layers: tuple[LayerRow, ...]
    equivalences: Equivalences
    data_quality: DataQuality
    held_idle: HeldIdle | None = optional()   # energy of held but idle GPUs (absent from older reports)
    scope2: Scope2 | None = optional()        # Scope 2 location- and market-based (absent from older reports)
    marginal: Marginal | None = optional()    # marginal emissions, consequential view: absent without marginal data
    whatif: WhatIf
    time_shift: TimeShift | None = optional()   # the same work started later (absent from older reports)
    esrs_e1: EsrsE1 | None = optional()       # all-projects report: the ESRS E1-style table (absent from older ones)
    annex_xi: AnnexXi | None = optional()     # project report: EU AI Act Annex XI training energy (absent from older)
    sci: Sci | None = optional()   # SCI-style g CO2eq per unit (all projects: per project; absent from older)
    daily: tuple[Day, ...]
    hourly: tuple[Hour, ...]
    fleet: FleetSections | None = flattened()   # kind "fleet" only

    @property
    def market_based(self) -> bool:
        """True when the headline's Scope 2 is market-based (--scope2-basis market): every figure with a
        location_kg beside it is then market-based."""
        return self.scope2 is not None and self.scope2.basis == "market"


def as_report(value: Report | Mapping[str, Any]) -> Report:
    """A Report, or a report dict (JSON, schema_version 1) read into one."""
    if isinstance(value, Report):
        return value
    if isinstance(value, Mapping):
        return Report.from_dict(value)
    raise TypeError(f"report must be a Report or a mapping, got {type(value).__name__}")


__all__ = [
    "NOT_IN_LEDGER", "SCHEMA_VERSION", "AmdExporter", "Change", "ClusterRow", "CounterDifference", "CpuEnergyShares",
    "CpuHardware", "CpuLayer", "CpuReconciliation", "DataQuality", "Day", "Embodied", "EmbodiedLayer", "EmbodiedRate",
    "EnergyShares",
    "EqualShare", "Equivalences", "FleetSections", "Gaps", "GpuCounters", "GpuHardware", "HeldIdle", "HeldIdleJob",
    "Hour", "IdleLayer", "IntensityShares", "LayerFigures", "LayerRow", "Method", "Phase", "PhaseCluster", "PhaseCpu",
    "PhaseGpu", "PhaseLayers", "Previous", "ProjectPhase", "ProjectRow", "Rapl", "RaplNode", "Reconciliation",
    "Report", "ReportWindow", "Scope2", "Scope2Figures", "Scope2Instrument", "Scope2Phase", "Scope2Project",
    "Scope2ResidualMix", "Scope2Use", "TimeShift", "TimeShiftOption", "TopJob", "Total", "WhatIf", "WhatIfOption",
    "as_report",
    "Band", "Bound", "Uncertainty",
]
__all__ += ["NodeIssue", "NodeLayer", "NodePower"]   # the node layer (BMC power)
__all__ += ["AnnexXi", "AnnexXiPhase", "EsrsE1", "Sci", "SciRow"]   # the disclosure sections
__all__ += ["Marginal", "MarginalCluster", "MarginalFigures", "MarginalPhase", "MarginalProject"]   # consequential
