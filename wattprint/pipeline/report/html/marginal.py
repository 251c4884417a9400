"""The marginal section of the page (marginal): marginal emissions, the consequential view, with their coverage per
phase, project and cluster. Its own heading and label, apart from the headline and Scope 2, so it is never read as a
part of either."""

from __future__ import annotations

from ..types import MarginalFigures, Report
from .common import CO2, DASH, G_KWH, _e, _qty, fmt
from .sections import _table, _tr


def _cells(f: MarginalFigures) -> list[tuple[str, bool]]:
    rate = DASH if f.marginal_g_per_kwh is None else fmt(f.marginal_g_per_kwh, "intensity")
    return [(fmt(f.energy_kwh), True), (fmt(f.covered_kwh), True), (fmt(f.covered_share, "share"), True),
            (fmt(f.marginal_kg), True), (rate, True), (_e(", ".join(f.sources)) or DASH, False)]


def _marginal(report: Report) -> str:
    m = report.marginal
    if m is None:
        return ""
    t = m.total
    head = [("Energy (kWh)", True), ("Covered (kWh)", True), ("Coverage (%)", True), (f"Marginal (kg {CO2})", True),
            (f"Marginal rate ({G_KWH})", True), ("Sources", False)]
    phases = _table([("Phase", False), *head], (_tr([(_e(p.phase), False), *_cells(p)]) for p in m.phases),
                    "marginal-phases")
    projects = _table([("Project", False), *head], (_tr([(_e(p.project), False), *_cells(p)]) for p in m.projects),
                      "marginal-projects", foot=_tr([("<b>total</b>", False), *_cells(t)]))
    clusters = _table([("Cluster", False), ("Zone", False), ("Hours with marginal data", True), *head],
                      (_tr([(_e(c.cluster), False), (_e(c.zone) or DASH, False), (fmt(c.marginal_hours, "int"), True),
                            *_cells(c)]) for c in m.clusters), "marginal-clusters")
    if t.covered_kwh > 0:
        sentence = (f'<b>{_qty(t.marginal_kg, "kg " + CO2)}</b> at the marginal emission rate '
                    f'({_qty(t.marginal_g_per_kwh, G_KWH, "intensity")} on average) for the '
                    f'{_qty(t.covered_kwh, "kWh")} that marginal data covers: {_qty(t.covered_share, "%", "share")} '
                    f'of the {_qty(t.energy_kwh, "kWh")} the headline counts. Sources: '
                    f'{_e(", ".join(t.sources)) or DASH}.')
    else:
        sentence = ("The marginal data stored for these zones in this window covers none of the hours this work ran "
                    f'({_qty(t.energy_kwh, "kWh")}): no marginal figure.')
    label = m.label[:1].upper() + m.label[1:]
    return ('<section id="marginal"><h2>Marginal emissions (consequential view)</h2>'
            f'<p><b>{_e(label)}.</b></p><p>{sentence}</p>' + phases + projects + clusters +
            f'<p class="statement">{_e(m.statement)}</p></section>')
