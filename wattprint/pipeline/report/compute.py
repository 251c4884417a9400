"""Turn fct_job_gpu_hour and the host (CPU) results into a report: one typed `Report` (types.py, the JSON
contract in docs/reports.md) that every format renders.

Every number here is a sum over rows of the scope (rpt_scope.sql) or a ratio of two such sums, so each one
traces back to (job, GPU, hour), (job, host, socket, domain, hour) or (job, host, hour) rows and from there to
samples, ledger rows and intensity hours. This module runs the sections in order; each lives in its own module:

    scope.py    options, checks, embodied rates, the scope (rpt_rows)
    layers.py   Sums and the accounting-layer arithmetic; method, layers table, equivalences
    phases.py   phase blocks (measured and manual phases), hardware, wall-clock hours
    quality.py  data quality (with gpu_checks.py) and its warnings
    shared_gpus.py  held but idle GPUs, and the equal-share fallback of the data quality
    whatif.py   the scope's hours priced in every configured zone
    scope2.py   Scope 2 location-based and market-based (contractual instruments, residual mixes)
    basis.py    a market-based headline (--scope2-basis market): every headline figure's market adjustment
    marginal.py marginal emissions (consequential view) with their coverage, beside the headline, never in it
    timeshift.py  each phase's and top job's hours started later, at the cleanest start within the slack
    disclosure.py the ESRS E1-style table (all projects) and the EU AI Act Annex XI training energy (a project)
    sci.py      SCI-style g CO2eq per functional unit (a project; per project in the all-projects report)
    uncertainty.py  low-high bands of the headline, each phase and each project (interval arithmetic)
    series.py   daily and hourly series
    fleet.py    the all-projects report's projects, clusters, top jobs, reconciliation
    query.py    the SQL, one statement per sql/rpt_<name>.sql, read by column name
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import duckdb

from ..errors import InputError
from ..settings import Settings
from ..timeutil import iso
from . import basis
from .disclosure import annex_xi, esrs_e1
from .fleet import fleet, previous
from .layers import Sums, equivalences, layer_rows, method
from .marginal import marginal
from .node_checks import has_node_data
from .phases import cpu_hardware_total, hardware_total, phase_blocks
from .quality import quality
from .sci import fleet_sci, sci
from .scope import ReportOptions, build_scope, check_scope, estimate_in_scope, rates, span, title
from .scope2 import prepare as prepare_scope2
from .scope2 import previous as previous_scope2
from .scope2 import section as scope2_section
from .series import daily, hourly
from .shared_gpus import equal_share, held_idle, measured
from .timeshift import time_shift
from .types import SCHEMA_VERSION, Report, ReportWindow, Total
from .uncertainty import uncertainty
from .whatif import whatif


def build_report(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions) -> Report:
    stale = con.execute("SELECT count(*) FROM fct_job_gpu_hour WHERE gpu_seconds IS NULL OR gpu_key IS NULL"
                        ).fetchall()[0][0]
    if stale:
        raise InputError("database", "its results were built by an older wattprint (no GPU-seconds or GPU keys)",
                         "run `wattprint build` once, then the report")
    check_scope(con, o)
    o = replace(o, node_data=has_node_data(con, o))      # the node layer is listed where there is node data
    embodied = rates(con, settings, o)
    before = previous(con, o) if o.kind == "fleet" else None
    market = o.scope2_basis == "market"
    before_market = previous_scope2(con, settings, o) if before and market else None
    matching = prepare_scope2(con, settings, o)     # the fleet's consumption per period: before the scope
    build_scope(con, o, o.window)
    estimates = [e for e in o.estimates if estimate_in_scope(e, o)]
    (n_rows,) = con.execute("SELECT count(*) FROM rpt_rows").fetchall()[0]
    if n_rows == 0 and not estimates:
        who = f"project {o.project!r}" if o.project else "any job"
        which = f" in phase {', '.join(o.phases)}" if o.phases else ""
        raise InputError("--month" if o.window.label else "--start/--end",
                         f"no measured energy for {who}{which} in {iso(o.window.start)} .. {iso(o.window.end)}",
                         span(con, o.project) + "; pick a window inside it, or add manual phases with --estimates")

    blocks = phase_blocks(con, settings, o, estimates)
    phases = tuple(p for p, _ in blocks)
    # both read rpt_rows before anything rebuilds it
    per_unit = sci(con, blocks, o) if o.kind == "project" else fleet_sci(con, settings, o, estimates)
    total = Sums()
    for _, sums in blocks:
        total = total.add(sums)
    # the sections in the order their statements always ran
    gpus = hardware_total(con, phases)
    cpus = cpu_hardware_total(con, phases)
    data_quality = quality(con, o, estimates, total)
    shared = measured(con)
    if shared:
        data_quality = replace(data_quality, equal_share=equal_share(con, o))
    held = held_idle(con, o) if shared else None
    what_if = whatif(con, settings, o, bool(estimates))
    shifted = (time_shift(con, settings, o, o.time_shift_slack_hours, bool(estimates))
               if o.time_shift_slack_hours else None)
    days = daily(con, o)
    hours = hourly(con)
    scope2 = scope2_section(con, settings, o, matching)
    consequential = marginal(con, o, bool(estimates))
    headline = location = total.headline_kg(o)
    # a market-based headline: every headline figure gets its Scope 2 part market-based, the rest stay location-based
    adj = basis.adjustments(con, o, scope2) if market else None
    if adj is not None:
        headline = adj.kg(location, adj.total)
        blocks = basis.phases(blocks, adj)
        phases = tuple(p for p, _ in blocks)
        days = basis.days(days, adj)
        what_if, shifted = basis.location_only(what_if, shifted)
    fleet_sections = (fleet(con, o, total, before or {}, data_quality.gpu_counters, adj, before_market)
                      if o.kind == "fleet" else None)
    bands = uncertainty(con, settings, o, blocks, estimates, headline,
                        [(p.project, p.emissions_kg) for p in fleet_sections.projects] if fleet_sections else ())
    how = method(o, embodied)
    if adj is not None:
        how = replace(how, statement=how.statement + basis.STATEMENT)
    w = o.window
    return Report(
        schema_version=SCHEMA_VERSION,
        kind=o.kind,
        title=title(o),
        project=o.project,
        generated_at=iso((o.generated_at or datetime.now(UTC)).replace(microsecond=0)),
        window=ReportWindow(start=iso(w.start), end=iso(w.end), label=w.label, hours=w.hours),
        method=how,
        phases=phases,
        total=Total(
            energy_kwh=total.energy_j / 3.6e6,
            emissions_kg=headline,
            location_kg=location if adj is not None else None,
            gpu_hours=total.gpu_s / 3600.0,
            cpu_energy_kwh=total.cpu_j / 3.6e6,
            cpu_package_kwh=total.cpu_pkg_j / 3.6e6,
            cpu_dram_kwh=total.cpu_dram_j / 3.6e6,
            cpu_hours=total.cpu_s / 3600.0,
            intensity_g_per_kwh=total.intensity(),
            facility_energy_kwh=total.facility_kwh(o),
            hardware=gpus,
            cpu_hardware=cpus,
        ),
        uncertainty=bands,
        layers=layer_rows(total, o),
        equivalences=equivalences(headline),
        data_quality=data_quality,
        held_idle=held,
        scope2=scope2,
        marginal=consequential,
        whatif=what_if,
        time_shift=shifted,
        esrs_e1=esrs_e1(scope2, total, o) if o.kind == "fleet" else None,
        annex_xi=annex_xi(blocks, o) if o.kind == "project" else None,
        sci=per_unit,
        daily=days,
        hourly=hours,
        fleet=fleet_sections,
    )


def finite(report: Report | Mapping[str, Any]) -> bool:
    """True when no number in the report is NaN or infinite (checked before anything is written)."""
    def ok(v: Any) -> bool:
        if isinstance(v, float):
            return math.isfinite(v)
        if isinstance(v, Mapping):
            return all(ok(x) for x in v.values())
        if isinstance(v, list | tuple):
            return all(ok(x) for x in v)
        return True
    return ok(report.to_dict() if isinstance(report, Report) else report)


__all__ = ["build_report", "finite"]
