"""The records of the marginal section (`marginal`): the consequential view beside the headline's attributional one.
The electricity the headline counts, priced hour by hour with the marginal emission rate of its zone (e.g. WattTime
co2_moer) where marginal data covers the hour, with that coverage, per phase, project and cluster and in all (see
report/marginal.py and docs/reports.md). Never added to or mixed with any average-based figure. Added to
schema_version 1 after its first reports: an optional key there."""

from __future__ import annotations

from dataclasses import dataclass

from ..record import Record

LABEL = "marginal (consequential) \u2014 not comparable with and not added to the location-based total"


@dataclass(frozen=True, kw_only=True)
class MarginalFigures(Record):
    """The marginal view of some electricity: what of it marginal data covers, and that part priced at it."""

    energy_kwh: float                # the electricity the headline counts (its layers; the energy Scope 2 prices)
    covered_kwh: float               # of it, in the (parts of) hours the marginal signal of its zone covers
    covered_share: float             # covered_kwh / energy_kwh (0..1): the coverage
    marginal_kg: float               # covered_kwh priced hour by hour at the marginal rate: not a headline figure
    marginal_g_per_kwh: float | None   # marginal_kg / covered_kwh; None when nothing is covered
    sources: tuple[str, ...]         # the sources of the marginal data that priced it (e.g. watttime)


@dataclass(frozen=True, kw_only=True)
class MarginalPhase(MarginalFigures):
    phase: str


@dataclass(frozen=True, kw_only=True)
class MarginalProject(MarginalFigures):
    project: str                     # NOT_IN_LEDGER for jobs the ledger does not know


@dataclass(frozen=True, kw_only=True)
class MarginalCluster(MarginalFigures):
    cluster: str
    zone: str | None                 # None: the cluster has no zone (never covered)
    marginal_hours: int              # hours of the window for which its zone holds marginal data


@dataclass(frozen=True, kw_only=True)
class Marginal(Record):
    """Marginal emissions (consequential view) of the report's measured electricity, with their coverage."""

    label: str                       # LABEL: what the figures are, and that they are not the headline's
    statement: str                   # the method in one paragraph
    total: MarginalFigures           # the report's scope (the project, or the fleet)
    phases: tuple[MarginalPhase, ...]
    projects: tuple[MarginalProject, ...]   # the all-projects report: each project; a project report: itself
    clusters: tuple[MarginalCluster, ...]   # each cluster of the scope, with its zone's marginal hours
