"""Scope 2, location-based and market-based, of the report's electricity (GHG Protocol Scope 2 Guidance; ESRS E1-6).

Both methods price the same electricity: each rpt_rows row's energy in the headline's layers (rpt_scope2_energy.sql).
Location-based is what the headline already is (each hour's grid intensity). Market-based:

1. `prepare` (before the report's scope is built): the fleet's electricity per cluster and matching period (UTC
   month, or hour) over the whole periods the window touches, every project and phase (rpt_scope2_consumption.sql);
   then `match`: the instruments in wattprint's order of the hierarchy (PPAs, certificates, supplier factors; file
   order within a kind; docs/methodology.md section 7), each covering per period at most its allotment (its MWh
   spread evenly over its validity hours) and at most the consumption of its scope that earlier instruments left; an
   instrument's allotment it finds no consumption for is unused, never carried to another period. What an instrument
   covers in a period is shared among its clusters pro rata to what was left of their consumption, so among projects
   pro rata to theirs.
2. `section` (after): the report's rows priced (rpt_scope2_priced.sql): covered energy at its instrument's factor,
   the rest at the residual mix of its zone and year, or at the location-based factor where none is known (counted
   and flagged, as the Guidance allows when no residual mix is available).
3. `previous` (a market-based headline's all-projects report, report/basis.py): the window before, matched and
   priced the same way, per project.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import duckdb

from ..db import run_sql
from ..scope2 import J_PER_MWH, Instrument, Scope2Config
from ..settings import Settings
from ..timeutil import iso
from .layers import included
from .query import rows
from .scope import ReportOptions, build_scope, ts
from .types import NOT_IN_LEDGER
from .types.scope2 import (
    Scope2,
    Scope2Figures,
    Scope2Instrument,
    Scope2Phase,
    Scope2Project,
    Scope2ResidualMix,
    Scope2Use,
)

Cell = tuple[str, datetime]       # (cluster, period start)


@dataclass(frozen=True)
class Cover:
    """What one instrument covered of one cluster-period's consumption."""

    instrument: str
    ord: int
    cluster: str
    period: datetime
    energy_j: float
    fraction: float               # energy_j / the cluster-period's consumption


@dataclass(frozen=True)
class Matching:
    covers: tuple[Cover, ...]
    applied_j: Mapping[str, float]          # per instrument, over the report's periods
    unused_j: Mapping[str, float | None]    # None: an all-consumption supplier factor


def periods(start: datetime, end: datetime, monthly: bool) -> list[tuple[datetime, datetime]]:
    """The matching periods (UTC months or hours) that [start, end) touches, whole."""
    out = []
    t = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0) if monthly else \
        start.replace(minute=0, second=0, microsecond=0)
    while t < end:
        nxt = (t.replace(year=t.year + t.month // 12, month=t.month % 12 + 1) if monthly else t + timedelta(hours=1))
        out.append((t, nxt))
        t = nxt
    return out


def match(instruments: Iterable[Instrument], consumption: Mapping[Cell, float],
          spans: Sequence[tuple[datetime, datetime]]) -> Matching:
    """Instruments matched to consumption (joules per cluster and period), period by period, in the hierarchy's
    order, never beyond an instrument's allotment nor beyond the consumption left in its scope. Validity periods are
    whole matching periods (config checks it), so a period is in an instrument's validity or not."""
    used: dict[Cell, float] = {}
    covers: list[Cover] = []
    applied: dict[str, float] = {}
    unused: dict[str, float | None] = {}
    for inst in sorted(instruments, key=lambda i: i.rank):
        valid_s = (inst.end - inst.start).total_seconds()
        applied[inst.name] = 0.0
        unused[inst.name] = None if inst.mwh is None else 0.0
        for p0, p1 in spans:
            if not (inst.start <= p0 and p1 <= inst.end):
                continue
            avail = {c: consumption.get((c, p0), 0.0) - used.get((c, p0), 0.0) for c in sorted(inst.clusters)}
            avail = {c: max(a, 0.0) for c, a in avail.items()}
            total = sum(avail.values())
            if inst.mwh is None:
                take = total
            else:
                allot = inst.mwh * J_PER_MWH * (p1 - p0).total_seconds() / valid_s
                take = min(allot, total)
                unused[inst.name] = (unused[inst.name] or 0.0) + (allot - take)
            applied[inst.name] += take
            if take <= 0:
                continue
            for c, a in avail.items():
                part = a * take / total
                if part <= 0:
                    continue
                used[(c, p0)] = used.get((c, p0), 0.0) + part
                covers.append(Cover(inst.name, inst.rank[0] * 10_000 + inst.order, c, p0, part,
                                    part / consumption[(c, p0)]))
    return Matching(tuple(covers), applied, unused)


def layer_flags(o: ReportOptions) -> dict[str, Any]:
    """The parameters $c, $k, $p, $n of the rpt_scope2_*.sql statements: the headline's layers, 1 or 0."""
    inc = included(o)
    return {"c": int("cpu" in inc), "k": int("idle" in inc), "p": int("pue" in inc), "n": int("node" in inc)}


def prepare(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions) -> Matching:
    """The matching, and the temp tables rpt_scope2_cover and rpt_scope2_residual that rpt_scope2_priced.sql reads.
    Leaves rpt_rows holding the fleet's rows of the matched periods: build the report's scope after it."""
    s2 = settings.config.scope2
    monthly = s2.matching == "monthly"
    run_sql(con, "macros")                 # emissions_g, which rpt_scope2_energy's macros call
    run_sql(con, "rpt_scope2_energy")
    run_sql(con, "rpt_scope2_cover")
    run_sql(con, "rpt_scope2_residual")
    if s2.residual_mix:
        con.executemany("INSERT INTO rpt_scope2_residual VALUES (?, ?, ?, ?)",
                        [[m.zone, m.year, m.g_per_kwh, m.source] for m in s2.residual_mix])
    spans = periods(o.window.start, o.window.end, monthly)
    active = [i for i in s2.instruments if i.start < spans[-1][1] and spans[0][0] < i.end] if spans else []
    if not active:
        return Matching((), {i.name: 0.0 for i in s2.instruments}, {})
    run_sql(con, "macros")
    run_sql(con, "rpt_scope", {"start": spans[0][0], "end": spans[-1][1], "project": None, "phases": [],
                               "pro_rata": o.idle_policy == "pro-rata"})
    cells = {(r["cluster"], ts(r["period_ts"])): float(r["energy_j"] or 0.0)
             for r in rows(con, "rpt_scope2_consumption", {**layer_flags(o), "monthly": monthly})}
    m = match(active, cells, spans)
    if m.covers:
        con.executemany("INSERT INTO rpt_scope2_cover VALUES (?, ?, ?, ?, ?, ?)",
                        [[c.cluster, c.period, c.instrument, c.ord, c.fraction,
                          next(i.g_per_kwh for i in active if i.name == c.instrument)] for c in m.covers])
    return m


def previous(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions) -> dict[str, float]:
    """Per project (NOT_IN_LEDGER for jobs not in the ledger), market-based minus location-based kg of the window
    before: the all-projects report's previous figures under a market-based headline (report/basis.py). The window
    before gets its own matching, over the whole periods it touches, as a report of it would. Rebuilds rpt_rows and
    the matching's tables: call it before this window's `prepare`."""
    before = replace(o, window=o.window.previous())
    prepare(con, settings, before)
    build_scope(con, before, before.window)
    run_sql(con, "rpt_scope2_priced", {**layer_flags(o), "monthly": settings.config.scope2.matching == "monthly"})
    out: dict[str, float] = {}
    for r in rows(con, "rpt_scope2_sums"):
        name = r["project"] or NOT_IN_LEDGER
        out[name] = out.get(name, 0.0) + (float(r["market_g"] or 0.0) - float(r["location_g"] or 0.0)) / 1000.0
    return out


def section(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions, m: Matching) -> Scope2:
    """The Scope 2 section of the report's scope (rpt_rows built): both methods per phase, project and in all."""
    s2 = settings.config.scope2
    run_sql(con, "rpt_scope2_priced", {**layer_flags(o), "monthly": s2.matching == "monthly"})
    sums = rows(con, "rpt_scope2_sums")
    uses = rows(con, "rpt_scope2_uses")
    by_phase: dict[str, list[Mapping[str, Any]]] = {}
    by_project: dict[str, list[Mapping[str, Any]]] = {}
    for r in sums:
        by_phase.setdefault(r["phase"], []).append(r)
        by_project.setdefault(r["project"] or NOT_IN_LEDGER, []).append(r)
    phase_uses: dict[str, list[Mapping[str, Any]]] = {}
    project_uses: dict[str, list[Mapping[str, Any]]] = {}
    for u in uses:
        phase_uses.setdefault(u["phase"], []).append(u)
        project_uses.setdefault(u["project"] or NOT_IN_LEDGER, []).append(u)
    phases = tuple(Scope2Phase(phase=k, **_figures(v, phase_uses.get(k, ())))
                   for k, v in sorted(by_phase.items()))
    projects = tuple(Scope2Project(project=k, **_figures(v, project_uses.get(k, ())))
                     for k, v in sorted(by_project.items()))
    total = Scope2Figures(**_figures(sums, uses))
    mixes, warnings = _residuals(con, s2)
    spans = periods(o.window.start, o.window.end, s2.matching == "monthly")
    instruments = tuple(_instrument(i, m) for i in sorted(s2.instruments, key=lambda i: i.rank)
                        if spans and i.start < spans[-1][1] and spans[0][0] < i.end)
    return Scope2(basis=o.scope2_basis, matching=s2.matching, statement=statement(o, s2), total=total,
                  phases=phases, projects=projects, instruments=instruments, residual_mixes=mixes,
                  warnings=warnings)


def _figures(sums: Sequence[Mapping[str, Any]], uses: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    energy = sum(float(r["energy_j"] or 0.0) for r in sums)
    covered = sum(float(r["covered_j"] or 0.0) for r in sums)
    by_name: dict[str, tuple[int, float, float]] = {}
    for u in uses:
        o, j, g = by_name.get(u["instrument"], (int(u["ord"]), 0.0, 0.0))
        by_name[u["instrument"]] = (o, j + float(u["energy_j"] or 0.0), g + float(u["g"] or 0.0))
    return {
        "energy_kwh": energy / 3.6e6,
        "location_kg": sum(float(r["location_g"] or 0.0) for r in sums) / 1000.0,
        "market_kg": sum(float(r["market_g"] or 0.0) for r in sums) / 1000.0,
        "covered_kwh": covered / 3.6e6,
        "covered_share": min(1.0, max(0.0, covered / energy)) if energy > 0 else 0.0,
        "residual_mix_kwh": sum(float(r["residual_j"] or 0.0) for r in sums) / 3.6e6,
        "location_fallback_kwh": sum(float(r["fallback_j"] or 0.0) for r in sums) / 3.6e6,
        "instruments": tuple(Scope2Use(name=n, energy_kwh=j / 3.6e6, emissions_kg=g / 1000.0)
                             for n, (_, j, g) in sorted(by_name.items(), key=lambda kv: (kv[1][0], kv[0]))),
    }


def _residuals(con: duckdb.DuckDBPyConnection, s2: Scope2Config) -> tuple[tuple[Scope2ResidualMix, ...],
                                                                            tuple[str, ...]]:
    mixes, unknown = [], []
    for r in rows(con, "rpt_scope2_residual_use"):
        if r["residual_year"] is not None and (r["residual_j"] or 0) > 0:
            mix = next(x for x in s2.residual_mix if x.zone == r["zone"] and x.year == r["residual_year"])
            mixes.append(Scope2ResidualMix(zone=mix.zone, year=mix.year, g_per_kwh=mix.g_per_kwh, source=mix.source,
                                           energy_kwh=float(r["residual_j"]) / 3.6e6))
        if (r["fallback_j"] or 0) > 0:
            unknown.append((r["zone"] or "unknown zone", int(r["consumption_year"]), float(r["fallback_j"]) / 3.6e6))
    merged: dict[tuple[str, int], Scope2ResidualMix] = {}
    for x in mixes:      # one line per factor, whichever consumption years it priced
        k = (x.zone, x.year)
        prev = merged.get(k)
        merged[k] = x if prev is None else Scope2ResidualMix(zone=x.zone, year=x.year, g_per_kwh=x.g_per_kwh,
                                                             source=x.source, energy_kwh=prev.energy_kwh + x.energy_kwh)
    warnings = tuple(f"residual mix unknown for {z} in {y}: location-based factor used for {kwh:,.1f} kWh of "
                     "market-based Scope 2" for z, y, kwh in unknown)
    return tuple(merged.values()), warnings


def _instrument(i: Instrument, m: Matching) -> Scope2Instrument:
    unused = m.unused_j.get(i.name)
    return Scope2Instrument(
        name=i.name, kind=i.kind, certificate=i.certificate, clusters=i.clusters, zone=i.zone, start=iso(i.start),
        end=iso(i.end), mwh=i.mwh, g_per_kwh=i.g_per_kwh, registry_id=i.registry_id, source=i.source,
        applied_kwh=m.applied_j.get(i.name, 0.0) / 3.6e6,
        unused_kwh=None if i.mwh is None else (unused or 0.0) / 3.6e6)


def statement(o: ReportOptions, s2: Scope2Config) -> str:
    period = "UTC month" if s2.matching == "monthly" else "hour (24/7-style hourly matching)"
    return (
        "Scope 2 is reported both ways (GHG Protocol Scope 2 Guidance): location-based prices the headline's "
        "electricity with each hour's grid-average intensity of its zone; market-based prices what contractual "
        "instruments cover (PPAs, then energy attribute certificates, then supplier-specific factors) at their "
        f"emission factors, matched per {period} and never beyond their quantity, and the rest at its zone's "
        "residual mix, or at the location-based factor where no residual mix is known (flagged). Covered energy is "
        "shared among projects pro rata to their consumption in each instrument's scope and period. The headline "
        f"is {o.scope2_basis}-based."
    )
