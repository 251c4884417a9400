"""The marginal section (`marginal`): the report's electricity priced with the marginal signal, beside the headline
and never in it.

The headline is attributional: the GHG Protocol's location-based Scope 2, each hour's grid-average intensity of the
zone (the average signal of intensity_hourly). A marginal emission rate (WattTime co2_moer: the emissions of the
generators that respond to a change in load) answers another question, what the consumption changed at the margin
(a consequential view). wattprint stores the two as separate signals (migrations/0010_intensity_signals.sql) and
shows the marginal figure as its own, clearly labelled section:

* the electricity the headline counts (rpt_scope2_energy.sql `scope2_j`, the energy both Scope 2 methods price),
  per (project, phase, cluster, zone, hour) of the scope (rpt_marginal_priced.sql);
* priced only where marginal data covers the hour, at that hour's time-weighted mean, for the covered part of the
  hour (energy taken as spread evenly over it); nowhere else: no fallback to averages or defaults, so the figure
  comes with its coverage, the share of the energy so priced;
* per phase, project and cluster and in all; estimated phases have no hourly profile and are left out.

The section is absent when the marginal signal holds no hour of the scope's zones inside the window (a report
without marginal data carries no trace of it); when it holds some but none under the work's hours, it is there
with a coverage of 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import duckdb

from ..db import run_sql
from .layers import fraction, included
from .query import rows
from .scope import ReportOptions
from .types import NOT_IN_LEDGER
from .types.marginal import LABEL, Marginal, MarginalCluster, MarginalFigures, MarginalPhase, MarginalProject


def marginal(con: duckdb.DuckDBPyConnection, o: ReportOptions, has_estimates: bool = False) -> Marginal | None:
    """The marginal section of the report's scope (rpt_rows built), or None when there is no marginal data for it."""
    stored = rows(con, "rpt_marginal_stored", {"start": o.window.start, "end": o.window.end})
    if not stored:
        return None
    inc = included(o)
    run_sql(con, "rpt_scope2_energy")          # scope2_j: the electricity the headline counts, one rule
    run_sql(con, "rpt_marginal_priced", {"c": int("cpu" in inc), "k": int("idle" in inc), "p": int("pue" in inc),
                                          "n": int("node" in inc)})
    sums = rows(con, "rpt_marginal_sums")
    con.execute("DROP TABLE IF EXISTS rpt_marginal_priced")
    hours = {r["zone"]: int(r["hours"]) for r in stored}
    by_phase: dict[str, list[Mapping[str, Any]]] = {}
    by_project: dict[str, list[Mapping[str, Any]]] = {}
    by_cluster: dict[tuple[str, str | None], list[Mapping[str, Any]]] = {}
    for r in sums:
        by_phase.setdefault(r["phase"], []).append(r)
        by_project.setdefault(r["project"] or NOT_IN_LEDGER, []).append(r)
        by_cluster.setdefault((r["cluster"], r["zone"]), []).append(r)
    return Marginal(
        label=LABEL,
        statement=statement(has_estimates),
        total=MarginalFigures(**_figures(sums)),
        phases=tuple(MarginalPhase(phase=k, **_figures(v)) for k, v in sorted(by_phase.items())),
        projects=tuple(MarginalProject(project=k, **_figures(v)) for k, v in sorted(by_project.items())),
        clusters=tuple(MarginalCluster(cluster=c, zone=z, marginal_hours=hours.get(z, 0), **_figures(v))
                       for (c, z), v in sorted(by_cluster.items(), key=lambda kv: kv[0][0])),
    )


def _figures(sums: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    rs = list(sums)
    energy = sum(float(r["energy_j"] or 0.0) for r in rs)
    covered = sum(float(r["covered_j"] or 0.0) for r in rs)
    grams = sum(float(r["marginal_g"] or 0.0) for r in rs)
    sources = sorted({s for r in rs if r["sources"] for s in str(r["sources"]).split("+")})
    return {
        "energy_kwh": energy / 3.6e6,
        "covered_kwh": covered / 3.6e6,
        "covered_share": fraction(covered, energy),
        "marginal_kg": grams / 1000.0,
        "marginal_g_per_kwh": grams / (covered / 3.6e6) if covered > 0 else None,
        "sources": tuple(sources),
    }


def statement(has_estimates: bool) -> str:
    text = (
        "Marginal emissions are a consequential view: the electricity the headline counts (its layers, with the PUE "
        "overhead when pue is in the headline), priced hour by hour with the marginal emission rate of its zone "
        "(e.g. WattTime co2_moer, the emissions of the generators that respond to a change in load), only where "
        "marginal data covers the hour: no fallback to average intensity, a nearest hour or a default. An hour's "
        "energy is taken as spread evenly over it, so a partly covered hour counts for its covered part, at the "
        "time-weighted mean of the data covering it; coverage is the share of the energy so priced. The headline "
        "is attributional (location-based: each hour's grid-average intensity); the two answer different questions, "
        "so the marginal figure is not comparable with it and never added to it or to any other total"
    )
    return text + ("; estimated phases have no hourly profile and are left out." if has_estimates else ".")
