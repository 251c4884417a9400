"""The headline's Scope 2 basis (`--scope2-basis`, config `report.scope2_basis`): location-based (the default) or
market-based (GHG Protocol Scope 2 Guidance; docs/reports.md, "The headline's Scope 2 basis").

Location-based, nothing here runs and no figure changes. Market-based, every figure the report presents as the
headline (the total, each phase block, each project and project x phase of the all-projects report, its top jobs,
its window before, the daily series, and from them the equivalences, the uncertainty bands and the model card's
grams) is its location-based figure plus its *market adjustment*: market-based minus location-based Scope 2 of the
same electricity (report/scope2.py). Each keeps its location-based value beside it (`location_kg`), and phases and
projects add up to the total under either basis. The adjustments come from:

* the total, each phase and project: the Scope 2 section's own figures, so a phase block and its Scope 2 row agree;
* each project x phase: rpt_scope2_sums.sql, the rows those figures sum;
* each job: rpt_scope2_jobs.sql, every (project, phase, cluster, hour) of the Scope 2 pricing shared among its jobs by
  their electricity (exact: the pricing is linear in the electricity of a cluster-hour);
* each day: rpt_scope2_days.sql;
* the window before: its own matching and pricing (scope2.previous).

Estimated (TDP) blocks are never matched to instruments (scope2.py): their adjustment is 0. Location-based by
definition under either basis: the accounting layers (the adjustment is a line of its own beside them), every
intensity, the what-if and time-shift what-ifs (they price grid intensity, and contracts do not move with the work),
held-idle and cluster emissions, the SCI (its I is location-based) and the ESRS E1 table (both figures).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date

import duckdb

from .layers import Sums
from .query import rows
from .scope import ReportOptions
from .scope2 import layer_flags
from .types import NOT_IN_LEDGER, Day, Phase, Scope2, TimeShift, WhatIf

JobKey = tuple[str, str, str, str]      # (cluster, job_id, project or "", phase), as rpt_sums_by_job.sql groups

STATEMENT = (" Headline basis: Scope 2 market-based (--scope2-basis market): the operational emissions of every "
             "headline figure (total, phases, projects, top jobs, days) are priced as the Scope 2 section's "
             "market-based figures (contractual instruments' factors on what they cover, the residual mix on the "
             "rest), each with its location-based figure beside it; the accounting layers, intensities, what-ifs, "
             "held-idle and cluster emissions stay location-based.")
LOCATION_ONLY = ("; location-based under a market-based headline too: it prices grid intensity, and contractual "
                 "instruments do not move with the work")
_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Adjustments:
    """Market-based minus location-based Scope 2, in kg, per grouping of the scope's rows (absent: 0)."""

    total: float
    phases: Mapping[str, float]
    projects: Mapping[str, float]                    # NOT_IN_LEDGER for the jobs the ledger does not know
    project_phases: Mapping[tuple[str, str], float]
    jobs: Mapping[JobKey, float]
    days: Mapping[int, float]                        # days since 1970-01-01

    def kg(self, location_kg: float, adjustment: float | None) -> float:
        return location_kg + (adjustment or 0.0)


def adjustments(con: duckdb.DuckDBPyConnection, o: ReportOptions, s2: Scope2) -> Adjustments:
    """The market adjustments of the report's scope (rpt_scope2_priced built: scope2.section has run)."""
    pairs = {((r["project"] or NOT_IN_LEDGER), r["phase"]): _kg(r) for r in rows(con, "rpt_scope2_sums")}
    jobs = {(r["cluster"], r["job_id"], r["project"], r["phase"]): _kg(r)
            for r in rows(con, "rpt_scope2_jobs", layer_flags(o))}
    days = {int(r["day"]): _kg(r) for r in rows(con, "rpt_scope2_days")}
    return Adjustments(total=s2.total.market_kg - s2.total.location_kg,
                       phases={p.phase: p.market_kg - p.location_kg for p in s2.phases},
                       projects={p.project: p.market_kg - p.location_kg for p in s2.projects},
                       project_phases=pairs, jobs=jobs, days=days)


def _kg(r: Mapping[str, object]) -> float:
    return (float(r["market_g"] or 0.0) - float(r["location_g"] or 0.0)) / 1000.0   # type: ignore[arg-type]


def phases(blocks: Sequence[tuple[Phase, Sums]], adj: Adjustments) -> list[tuple[Phase, Sums]]:
    """The phase blocks with their headline market-based (measured blocks; an estimated block's adjustment is 0)."""
    return [(replace(p, emissions_kg=adj.kg(p.emissions_kg, adj.phases.get(p.phase) if p.label == "measured"
                                            else None), location_kg=p.emissions_kg), s) for p, s in blocks]


def days(series: Sequence[Day], adj: Adjustments) -> tuple[Day, ...]:
    return tuple(replace(d, emissions_kg=adj.kg(d.emissions_kg, adj.days.get(_day(d.date))),
                         location_kg=d.emissions_kg) for d in series)


def _day(iso_date: str) -> int:
    return (date.fromisoformat(iso_date) - _EPOCH).days


def location_only(w: WhatIf, t: TimeShift | None) -> tuple[WhatIf, TimeShift | None]:
    """The what-ifs, saying they stay location-based under a market-based headline."""
    return replace(w, note=w.note + LOCATION_ONLY), (replace(t, note=t.note + LOCATION_ONLY) if t else None)
