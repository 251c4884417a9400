"""The Markdown report's disclosure sections: the ESRS E1-style table (all projects), the EU AI Act Annex XI
training energy (a project) and the SCI per functional unit (a project; per project in the all-projects report), and
the training SCI's sentence under a project report's headline."""

from __future__ import annotations

from .fmt import num, pct
from .markdown_sections import Md, cell, table
from .sci_card import TrainingSci
from .types import AnnexXi, EsrsE1, Report, Sci


def _fixed(x: float) -> str:
    """MWh and tonnes: three decimals (a month of a small cluster is a fraction of a MWh)."""
    return f"{x:,.3f}"


def disclosure_lines(r: Report) -> list[str]:
    """The ESRS E1-style table (all projects), the EU AI Act Annex XI training energy (a project) and the SCI per
    functional unit (both)."""
    out: list[str] = []
    if r.esrs_e1 is not None:
        out += esrs_e1_lines(r.esrs_e1)
    if r.annex_xi is not None:
        out += annex_xi_lines(r.annex_xi)
    if r.sci is not None:
        out += sci_lines(r.sci, per_project=r.kind == "fleet")
    return out


SCI_TITLE = "## SCI: emissions per functional unit"
SCI_NONE = ("No job of this report carries functional units: add the ledger columns units and unit_name (e.g. "
            "tokens) to state g CO2eq per unit.")


def sci_lines(c: Sci, *, per_project: bool = False) -> list[str]:
    """The SCI table; in the all-projects report with a project column, each share of that project's phase."""
    out = [SCI_TITLE + (", per project" if per_project else ""), ""]
    if not c.rows:
        return out + [SCI_NONE, ""]
    head = ["Phase", "Unit", "Units", "Jobs",
            "Share of the project's phase energy" if per_project else "Share of the phase's energy",
            "E x I (g CO2eq)", "M (g CO2eq)", "g CO2eq per unit", "per 1,000", "per 1,000,000"]
    out += table((["Project"] if per_project else []) + head,
                 [([x.project] if per_project else []) + [
                     x.phase, x.unit_name, num(x.units), x.jobs, pct(x.energy_share), num(x.operational_g),
                     num(x.embodied_g), num(x.g_per_unit), num(x.g_per_thousand_units), num(x.g_per_million_units)]
                  for x in c.rows])
    out += [f"(Method: {cell(c.method)}.)", ""]
    return out


def sci_training_lines(t: TrainingSci | None) -> list[str]:
    """The training phases' SCI in one sentence, under the headline of a project report (the model card's body
    states what its co2_eq_emissions metadata does: sci_card.py)."""
    if t is None:
        return []
    return [f"Per functional unit (SCI, training): {num(t.g_per_million_units)} g of CO2eq per 1,000,000 "
            f"{cell(t.unit_name)}, {num(t.g_per_unit)} g per unit, a unit being {cell(t.functional_unit)}. See SCI: "
            "emissions per functional unit.", ""]


def esrs_e1_lines(e: EsrsE1) -> list[str]:
    out = ["## ESRS E1 disclosure (energy, gross Scope 2, embodied Scope 3)", ""]
    out += table(["Disclosure", "Figure", "Unit"], [
        ["E1-5 energy consumption (electricity)", _fixed(e.energy_mwh), "MWh"],
        ["E1-6 gross Scope 2, location-based", _fixed(e.scope2_location_tco2eq), "tCO2eq"],
        ["E1-6 gross Scope 2, market-based", _fixed(e.scope2_market_tco2eq), "tCO2eq"],
        ["Scope 3 category 2 (capital goods): embodied GPU emissions, amortised, reported apart",
         _fixed(e.scope3_embodied_tco2eq), "tCO2eq"],
    ])
    out += [f"Energy: {cell(e.energy_included)}. Market-based: {pct(e.market_covered_share)} covered by contractual "
            f"instruments. Embodied emissions are {'in' if e.embodied_in_headline else 'not in'} the headline and "
            "never in Scope 2.", "", f"({cell(e.note)}.)", ""]
    return out


def annex_xi_lines(a: AnnexXi) -> list[str]:
    out = ["## EU AI Act Annex XI: energy consumption of training", ""]
    if not a.phases:
        return out + [f"No training phase ({', '.join(a.training_phases)}) in this report: no training energy to "
                      f"state ({num(a.other_phases_kwh)} kWh in other phases).", ""]
    out += table(["Phase", "Measured or estimated", "Energy (kWh)", "Method"],
                  [[p.phase, p.label, num(p.energy_kwh), p.method] for p in a.phases]
                  + [[Md("**training**"), "", Md(f"**{num(a.energy_kwh)}**"), ""]])
    split = (f" ({num(a.measured_kwh)} kWh measured, {num(a.estimated_kwh)} kWh estimated)"
             if a.measured_kwh and a.estimated_kwh else "")
    out += [f"Known energy consumption of training: **{num(a.energy_kwh)} kWh**{split}; "
            f"{num(a.other_phases_kwh)} kWh in other phases not counted.", "", f"(Method: {cell(a.method)}.)", ""]
    return out
