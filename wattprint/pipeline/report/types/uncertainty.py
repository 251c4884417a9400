"""The records of the uncertainty bands (`uncertainty`): a low-high range around each headline number, by interval
arithmetic over the relative bounds of data/uncertainty.csv. Added to schema_version 1 after its first reports, so
an optional key there."""

from __future__ import annotations

from dataclasses import dataclass

from ..record import Record, optional


@dataclass(frozen=True, kw_only=True)
class Band(Record):
    """One headline number and its range: low_kg <= emissions_kg <= high_kg."""

    name: str                        # the phase or the project ("" for the scope's total)
    label: str | None                # a phase block's label ("measured", "estimated (TDP)"); None otherwise
    emissions_kg: float              # the number the report shows (total, phase or project emissions)
    low_kg: float                    # every input at its low bound
    high_kg: float                   # every input at its high bound


@dataclass(frozen=True, kw_only=True)
class Bound(Record):
    """One row of the shipped table of relative bounds (wattprint/pipeline/data/uncertainty.csv)."""

    input: str                       # energy, intensity, pue or embodied
    quality: str                     # the class: an energy_quality, an intensity_quality, declared/default, amortised
    low_pct: float                   # relative deviation at the low end (<= 0), e.g. -0.05
    high_pct: float                  # relative deviation at the high end (>= 0)
    source: str                      # the citation, or "wattprint's assumption" and why


@dataclass(frozen=True, kw_only=True)
class Uncertainty(Record):
    """The bands of the headline total, of each phase block and (all-projects report) of each project."""

    method: str                      # how the bands are made (interval arithmetic)
    total: Band
    phases: tuple[Band, ...]         # in the order of the report's phases
    projects: tuple[Band, ...]       # the all-projects report's projects (empty in a project report)
    bounds: tuple[Bound, ...]
    note: str
    basis: str | None = optional()   # "market": the bands are those of the market-based figures (absent: location)
