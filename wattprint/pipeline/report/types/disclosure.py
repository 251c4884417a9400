"""The records of the disclosure sections (`esrs_e1`, `annex_xi`, `sci`): the report's own figures restated in the units
and scopes a disclosure asks for (see report/disclosure.py and docs/reports.md). Added to schema_version 1 after its
first reports: optional keys there."""

from __future__ import annotations

from dataclasses import dataclass

from ..record import Record, optional


@dataclass(frozen=True, kw_only=True)
class EsrsE1(Record):
    """The all-projects report as an ESRS E1-style table: energy (E1-5) and gross Scope 2 both ways (E1-6), the
    GPUs' embodied emissions apart, as Scope 3."""

    energy_mwh: float                # E1-5: the electricity of the headline's layers (= scope2.total.energy_kwh / 1000)
    energy_included: str             # which energy that is, in words
    scope2_location_tco2eq: float    # E1-6: gross Scope 2, location-based (= scope2.total.location_kg / 1000)
    scope2_market_tco2eq: float      # E1-6: gross Scope 2, market-based (= scope2.total.market_kg / 1000)
    market_covered_share: float      # of energy_mwh covered by contractual instruments (0..1)
    market_location_fallback_mwh: float   # market-based priced at the location-based factor: no residual mix known
    scope3_embodied_tco2eq: float    # Scope 3 category 2 (capital goods): the GPUs' embodied emissions, amortised
    embodied_in_headline: bool       # whether the report's headline adds them (never added to Scope 2 here)
    note: str


@dataclass(frozen=True, kw_only=True)
class AnnexXiPhase(Record):
    """One training phase block of the report (a measured phase, or a group of manual phases)."""

    phase: str
    label: str                       # "measured" or "estimated (TDP)"
    energy_kwh: float                # the electricity of the headline's layers for this block
    method: str


@dataclass(frozen=True, kw_only=True)
class AnnexXi(Record):
    """The energy a general-purpose AI model's provider states in its technical documentation (EU AI Act,
    Regulation (EU) 2024/1689, Annex XI, section 1, point 2(e): "known or estimated energy consumption of the
    model"), given as the energy of training."""

    training_phases: tuple[str, ...]   # the phases counted as training
    energy_kwh: float                # their electricity in the report's window (the headline's layers)
    measured_kwh: float              # of which measured
    estimated_kwh: float             # of which estimated (manual phases, TDP)
    other_phases_kwh: float          # the report's other phases (experimentation, inference, ...): not counted
    phases: tuple[AnnexXiPhase, ...]
    method: str


@dataclass(frozen=True, kw_only=True)
class SciRow(Record):
    """One phase's (or, as "all", the project's) emissions per functional unit for one unit name: the GSF Software
    Carbon Intensity, SCI = (E x I + M) / R, over the jobs whose ledger row carries units of that name."""

    project: str | None = optional()   # the all-projects report only: whose jobs (absent from a project report)
    phase: str                       # a phase, or "all" (every phase with units of this name, when more than one)
    unit_name: str                   # what a unit is (tokens, samples), from the ledger
    units: float                     # R: the jobs' units, each job's pro rata to its run inside the window
    jobs: int                        # the jobs that carry them
    energy_kwh: float                # their electricity (the headline's layers)
    energy_share: float              # of the phase's (all: the project's) electricity, 0..1: the rest carries no units
    operational_g: float             # E x I: their operational emissions as the headline counts them (location-based)
    embodied_g: float                # M: their GPUs' embodied emissions, amortised (counted even when not in headline)
    sci_g: float                     # operational_g + embodied_g
    g_per_unit: float                # sci_g / units
    g_per_thousand_units: float      # x 1,000
    g_per_million_units: float       # x 1,000,000


@dataclass(frozen=True, kw_only=True)
class Sci(Record):
    """SCI-style intensity per functional unit (Green Software Foundation, Software Carbon Intensity specification;
    ISO/IEC 21031:2024): rows only where the ledger gives the jobs units. A project report's, or the all-projects
    report's with a row per project (project set on every row)."""

    rows: tuple[SciRow, ...]         # empty: no job of the report carries units
    embodied_in_headline: bool       # whether the headline adds M too (SCI always does)
    method: str
