"""The disclosure sections of the page: the ESRS E1-style table (all projects, `esrs_e1`) and the EU AI Act Annex XI
training energy (a project, `annex_xi`) and the SCI-style emissions per functional unit (a project, and per project
in the all-projects report: `sci`)."""

from __future__ import annotations

from ..types import Report
from .common import CO2, _e, _qty, fmt
from .sections import _table, _tr


def _disclosure(report: Report) -> str:
    return _esrs_e1(report) + _annex_xi(report) + _sci(report)


def _esrs_e1(report: Report) -> str:
    e = report.esrs_e1
    if e is None:
        return ""
    rows = [("E1-5 energy consumption (electricity)", e.energy_mwh, "MWh"),
            ("E1-6 gross Scope 2, location-based", e.scope2_location_tco2eq, f"t{CO2}"),
            ("E1-6 gross Scope 2, market-based", e.scope2_market_tco2eq, f"t{CO2}"),
            ("Scope 3 category 2 (capital goods): embodied GPU emissions, amortised, reported apart",
             e.scope3_embodied_tco2eq, f"t{CO2}")]
    table = _table([("Disclosure", False), ("Figure", True), ("Unit", False)],
                   (_tr([(_e(label), False), (fmt(v, decimals=3), True), (unit, False)]) for label, v, unit in rows),
                   "esrs-e1")
    return ('<section id="esrs-e1"><h2>ESRS E1 disclosure (energy, gross Scope 2, embodied Scope 3)</h2>' + table +
            f'<p>Energy: {_e(e.energy_included)}. Market-based: {_qty(e.market_covered_share, "%", "share")} covered '
            f'by contractual instruments. Embodied emissions are {"in" if e.embodied_in_headline else "not in"} the '
            f'headline and never in Scope 2.</p><p class="statement">{_e(e.note)}</p></section>')


def _annex_xi(report: Report) -> str:
    a = report.annex_xi
    if a is None:
        return ""
    title = "<h2>EU AI Act Annex XI: energy consumption of training</h2>"
    if not a.phases:
        return (f'<section id="annex-xi">{title}<p>No training phase ({_e(", ".join(a.training_phases))}) in this '
                f'report: no training energy to state ({_qty(a.other_phases_kwh, "kWh")} in other phases).</p>'
                "</section>")
    table = _table([("Phase", False), ("Measured or estimated", False), ("Energy (kWh)", True), ("Method", False)],
                   (_tr([(_e(p.phase), False), (_e(p.label), False), (fmt(p.energy_kwh), True), (_e(p.method), False)])
                    for p in a.phases), "annex-xi",
                   foot=_tr([("<b>training</b>", False), ("", False), (f"<b>{fmt(a.energy_kwh)}</b>", True),
                             ("", False)]))
    split = (f' ({_qty(a.measured_kwh, "kWh")} measured, {_qty(a.estimated_kwh, "kWh")} estimated)'
             if a.measured_kwh and a.estimated_kwh else "")
    return (f'<section id="annex-xi">{title}{table}<p>Known energy consumption of training: '
            f'<b>{_qty(a.energy_kwh, "kWh")}</b>{split}; {_qty(a.other_phases_kwh, "kWh")} in other phases not '
            f'counted.</p><p class="statement">{_e(a.method)}</p></section>')


def _sci(report: Report) -> str:
    c = report.sci
    if c is None:
        return ""
    fleet = report.kind == "fleet"       # a row per project, each share of that project's phase
    title = f"<h2>SCI: emissions per functional unit{', per project' if fleet else ''}</h2>"
    if not c.rows:
        return (f'<section id="sci">{title}<p>No job of this report carries functional units: add the ledger '
                "columns units and unit_name (e.g. tokens) to state g CO2eq per unit.</p></section>")
    head = [("Phase", False), ("Unit", False), ("Units", True), ("Jobs", True),
            ("Share of the project's phase energy" if fleet else "Share of the phase's energy", True),
            (f"E&times;I (g {CO2})", True), (f"M (g {CO2})", True), (f"g {CO2} per unit", True), ("per 1,000", True),
            ("per 1,000,000", True)]
    table = _table(([("Project", False)] if fleet else []) + head,
                   (_tr(([(_e(x.project or ""), False)] if fleet else []) + [
                       (_e(x.phase), False), (_e(x.unit_name), False), (fmt(x.units), True),
                       (fmt(x.jobs, "int"), True), (fmt(x.energy_share, "share") + "&nbsp;%", True),
                       (fmt(x.operational_g), True), (fmt(x.embodied_g), True), (fmt(x.g_per_unit), True),
                       (fmt(x.g_per_thousand_units), True), (fmt(x.g_per_million_units), True)])
                    for x in c.rows), "sci")
    return f'<section id="sci">{title}{table}<p class="statement">{_e(c.method)}</p></section>'
