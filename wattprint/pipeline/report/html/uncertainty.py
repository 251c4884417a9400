"""The uncertainty section of the page (uncertainty): the band of the headline, of each phase and project, and the
bounds with their sources."""

from __future__ import annotations

from ..types import Band, Report
from .common import CO2, _e, _qty, fmt
from .sections import _table, _tr


def band(b: Band) -> str:
    """'<b>12.3</b> kg (band 10.1–15.0 kg)'."""
    return (f'{_qty(b.emissions_kg, "kg")} (band <span class="band">{fmt(b.low_kg)}\u2013{fmt(b.high_kg)}'
            "</span>&nbsp;kg)")


def _uncertainty(report: Report) -> str:
    u = report.uncertainty
    if u is None:
        return ""
    basis = " (Scope 2 market-based)" if u.basis == "market" else ""
    head = f'<p class="big-band">Total emissions{basis}: <b>{band(u.total)}</b> {CO2}</p>'
    phases = _table([("Phase", False), ("Label", False), (f"Emissions (kg {CO2}) and band", True)],
                    (_tr([(_e(p.name), False), (_e(p.label or ""), False), (band(p), True)]) for p in u.phases),
                    "uncertainty-phases")
    projects = ""
    if u.projects:
        projects = _table([("Project", False), (f"Emissions (kg {CO2}) and band", True)],
                          (_tr([(_e(p.name), False), (band(p), True)]) for p in u.projects), "uncertainty-projects")
    bounds = _table([("Input", False), ("Class", False), ("Low", True), ("High", True), ("Source", False)],
                    (_tr([(_e(b.input), False), (_e(b.quality), False), (fmt(b.low_pct, "share", signed=True), True),
                          (fmt(b.high_pct, "share", signed=True), True), (_e(b.source), False)]) for b in u.bounds),
                    "uncertainty-bounds")
    note = f'<p class="source">{_e(u.method)}; {_e(u.note)}.</p>'
    return (f'<section id="uncertainty"><h2>Uncertainty bands</h2>{head}{phases}{projects}'
            f"<details><summary>Bounds and their sources</summary>{bounds}</details>{note}</section>")
