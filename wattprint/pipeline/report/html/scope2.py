"""The Scope 2 section of the page (scope2): location-based and market-based emissions per phase and project, the
instruments and residual mixes used."""

from __future__ import annotations

from ..types import Report, Scope2Figures
from .common import CO2, DASH, G_KWH, _e, _qty, fmt
from .sections import _table, _tr


def _uses(f: Scope2Figures) -> str:
    return ", ".join(f"{_e(u.name)} {_qty(u.energy_kwh / 1000, 'MWh')}" for u in f.instruments) or "none"


def _row(label: str, f: Scope2Figures, cls: str = "") -> str:
    return _tr([(label, False), (fmt(f.energy_kwh), True), (fmt(f.location_kg), True), (fmt(f.market_kg), True),
                (fmt(f.covered_share, "share"), True), (_uses(f), False)], cls)


def _scope2(report: Report) -> str:
    s = report.scope2
    if s is None:
        return ""
    t = s.total
    head = [("Energy (kWh)", True), (f"Location-based (kg {CO2})", True), (f"Market-based (kg {CO2})", True),
            ("Covered by instruments (%)", True), ("Instruments used", False)]
    phases = _table([("Phase", False), *head], (_row(_e(p.phase), p) for p in s.phases), "scope2-phases")
    projects = _table([("Project", False), *head], (_row(_e(p.project), p) for p in s.projects), "scope2-projects",
                      foot=_row("<b>total</b>", t))
    instruments = ""
    if s.instruments:
        instruments = _table(
            [("Instrument", False), ("Kind", False), ("Scope", False), ("Valid (UTC)", False),
             ("Quantity (MWh)", True), (f"Factor ({G_KWH})", True), ("Applied (MWh)", True), ("Unused (MWh)", True)],
            (_tr([(_e(i.name), False), (_e(i.certificate or i.kind), False),
                  (_e(i.zone or ", ".join(i.clusters)), False), (f"{_e(i.start)} .. {_e(i.end)}", False),
                  ("all consumption" if i.mwh is None else fmt(i.mwh), True), (fmt(i.g_per_kwh), True),
                  (fmt(i.applied_kwh / 1000), True),
                  (DASH if i.unused_kwh is None else fmt(i.unused_kwh / 1000), True)]) for i in s.instruments),
            "scope2-instruments")
    mixes = ""
    if s.residual_mixes:
        mixes = _table([("Residual mix", False), ("Year", True), (f"Factor ({G_KWH})", True),
                        ("Energy priced (kWh)", True), ("Source", False)],
                       (_tr([(_e(m.zone), False), (_e(m.year), True), (fmt(m.g_per_kwh), True),
                             (fmt(m.energy_kwh), True), (_e(m.source), False)]) for m in s.residual_mixes),
                       "scope2-residual")
    warnings = "".join(f'<p class="sub">{_e(w)}</p>' for w in s.warnings)
    return ('<section id="scope2"><h2>Scope 2: location-based and market-based</h2>'
            f'<p>Location-based: <b>{_qty(t.location_kg, "kg " + CO2)}</b>; market-based: '
            f'<b>{_qty(t.market_kg, "kg " + CO2)}</b>, {_qty(t.covered_share, "%", "share")} of the '
            f'{_qty(t.energy_kwh, "kWh")} covered by contractual instruments. The headline is '
            f'{_e(s.basis)}-based.</p>' + phases + projects + instruments + mixes + warnings +
            f'<p class="statement">{_e(s.statement)}</p></section>')
