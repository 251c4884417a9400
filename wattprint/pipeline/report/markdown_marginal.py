"""The marginal section of the Markdown report (`marginal`): marginal emissions, the consequential view, with their
coverage, per phase, project and cluster. Its own heading and label, so it is never read as part of the headline."""

from __future__ import annotations

from typing import Any

from .fmt import num, pct
from .markdown_sections import Md, cell, table
from .types import Marginal, MarginalFigures


def _rate(f: MarginalFigures) -> str:
    return "-" if f.marginal_g_per_kwh is None else f"{f.marginal_g_per_kwh:,.0f}"


def marginal_line(m: Marginal) -> str:
    """The total in one sentence (plain text, no markup: the Markdown escapes it, the label is bolded apart)."""
    t = m.total
    if t.covered_kwh <= 0:
        return ("The marginal data stored for these zones in this window covers none of the hours this work ran "
                f"({num(t.energy_kwh)} kWh): no marginal figure.")
    return (f"{num(t.marginal_kg)} kg CO2eq at the marginal emission rate ({_rate(t)} gCO2eq/kWh on average) for the "
            f"{num(t.covered_kwh)} kWh that marginal data covers: {pct(t.covered_share)} of the {num(t.energy_kwh)} "
            f"kWh the headline counts. Sources: {', '.join(t.sources) or '-'}.")


def marginal_lines(m: Marginal) -> list[str]:
    label = m.label[:1].upper() + m.label[1:]
    out = ["## Marginal emissions (consequential view)", "", f"**{cell(label)}.** {cell(marginal_line(m))}", ""]
    head = ["Energy (kWh)", "Covered (kWh)", "Coverage", "Marginal (kg CO2eq)", "Marginal rate (g/kWh)", "Sources"]

    def cells(f: MarginalFigures) -> list[Any]:
        return [num(f.energy_kwh), num(f.covered_kwh), pct(f.covered_share), num(f.marginal_kg), _rate(f),
                ", ".join(f.sources) or "-"]
    out += table(["Phase", *head], [[p.phase, *cells(p)] for p in m.phases])
    out += table(["Project", *head],
                 [[p.project, *cells(p)] for p in m.projects] + [[Md("**total**"), *cells(m.total)]])
    out += table(["Cluster", "Zone", "Hours with marginal data", *head],
                 [[c.cluster, c.zone or "-", c.marginal_hours, *cells(c)] for c in m.clusters])
    return out + [f"Method: {cell(m.statement)}", ""]
