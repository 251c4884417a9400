"""The records of the Scope 2 section (`scope2`): location-based and market-based emissions of the same electricity,
side by side, per phase, project and the whole report, with the contractual instruments used (see report/scope2.py
and docs/reports.md). Added to schema_version 1 after its first reports: an optional key there."""

from __future__ import annotations

from dataclasses import dataclass

from ..record import Record


@dataclass(frozen=True, kw_only=True)
class Scope2Use(Record):
    """One instrument's part of some consumption."""

    name: str
    energy_kwh: float                # the consumption it covered
    emissions_kg: float              # that energy at the instrument's emission factor


@dataclass(frozen=True, kw_only=True)
class Scope2Figures(Record):
    """Both Scope 2 methods over the same electricity: the headline layers' energy (facility energy, with the PUE
    overhead when the pue layer is in the headline)."""

    energy_kwh: float                # the electricity both methods price
    location_kg: float               # grid average x energy, hour by hour (the headline's operational emissions)
    market_kg: float                 # instruments' factors on what they cover, the residual mix on the rest
    covered_kwh: float               # covered by contractual instruments
    covered_share: float             # covered_kwh / energy_kwh (0..1)
    residual_mix_kwh: float          # not covered, priced at its zone's residual mix
    location_fallback_kwh: float     # not covered, no residual mix known: priced at the location-based factor
    instruments: tuple[Scope2Use, ...]   # the instruments that covered some of it, in matching order


@dataclass(frozen=True, kw_only=True)
class Scope2Phase(Scope2Figures):
    phase: str


@dataclass(frozen=True, kw_only=True)
class Scope2Project(Scope2Figures):
    project: str                     # NOT_IN_LEDGER for jobs the ledger does not know


@dataclass(frozen=True, kw_only=True)
class Scope2Instrument(Record):
    """A contractual instrument of the config, with what the matching did with it in the report's periods."""

    name: str
    kind: str                        # ppa | certificate | supplier
    certificate: str | None          # GO | REC | I-REC for certificates, else None
    clusters: tuple[str, ...]        # its scope
    zone: str | None                 # the zone it was declared for (scope: that zone's clusters), else None
    start: str                       # validity, UTC, inclusive
    end: str                         # exclusive
    mwh: float | None                # quantity over the validity period; None: all consumption in scope
    g_per_kwh: float                 # its emission factor
    registry_id: str | None
    source: str
    applied_kwh: float               # matched to the fleet's consumption in the report's periods
    unused_kwh: float | None         # its allotment for those periods that found no consumption (not carried over)


@dataclass(frozen=True, kw_only=True)
class Scope2ResidualMix(Record):
    zone: str
    year: int                        # the year of the factor used (the latest one not after the consumption's)
    g_per_kwh: float
    source: str
    energy_kwh: float                # the report's uncovered consumption priced at it


@dataclass(frozen=True, kw_only=True)
class Scope2(Record):
    """Location-based and market-based Scope 2 (GHG Protocol Scope 2 Guidance, dual reporting)."""

    basis: str                       # the headline's method: location (default) | market
    matching: str                    # monthly | hourly: the period instruments are matched to consumption in
    statement: str                   # the method in one paragraph
    total: Scope2Figures             # the report's scope (the project, or the fleet)
    phases: tuple[Scope2Phase, ...]
    projects: tuple[Scope2Project, ...]   # the all-projects report: each project; a project report: itself
    instruments: tuple[Scope2Instrument, ...]   # every configured instrument valid in the report's window
    residual_mixes: tuple[Scope2ResidualMix, ...]   # the residual mixes that priced some of the consumption
    warnings: tuple[str, ...]        # e.g. "residual mix unknown ...: location-based factor used"
