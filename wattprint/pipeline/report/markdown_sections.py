"""The Markdown of the report's self-contained sections: Scope 2 (location- and market-based), the disclosure-ready
figures (ESRS E1, EU AI Act Annex XI, SCI per unit) and the uncertainty bands; and the table helpers all the
Markdown shares (markdown.py renders the report and calls these).

Every string taken from the report goes through `names.md` (names come from users: see names.py); what these
modules write themselves as markup is marked `Md` so a table leaves it alone."""

from __future__ import annotations

from typing import Any

from .fmt import num, pct, signed_pct
from .names import md
from .types import AnnexXi, Band, EsrsE1, Report, Sci, Scope2, Scope2Figures, Uncertainty


class Md(str):
    """Markdown wattprint wrote (bold, emphasis), kept as it is in a table cell."""


def cell(text: Any) -> str:
    return text if isinstance(text, Md) else md(text)


def table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out + [""]


# -- Scope 2 ----------------------------------------------------------------------------------------------

def uses_text(f: Scope2Figures) -> str:
    """The instruments that covered some of `f`, with the MWh each applied: 'ppa-wind 9.000 MWh, go-fr ...'."""
    return ", ".join(f"{u.name} {u.energy_kwh / 1000:,.3f} MWh" for u in f.instruments) or "none"


def scope2_line(s: Scope2) -> str:
    """Both Scope 2 figures of the report's scope in one sentence."""
    t = s.total
    return (f"Scope 2 location-based: {num(t.location_kg)} kg CO2eq; market-based: {num(t.market_kg)} kg CO2eq, "
            f"{pct(t.covered_share)} of the {num(t.energy_kwh)} kWh covered by contractual instruments "
            f"({uses_text(t)}). The headline is {s.basis}-based.")


def scope2_lines(s: Scope2) -> list[str]:
    out = ["## Scope 2: location-based and market-based", "", cell(scope2_line(s)), ""]
    head = ["Energy (kWh)", "Location-based (kg)", "Market-based (kg)", "Covered by instruments", "Instruments used"]

    def cells(f: Scope2Figures) -> list[Any]:
        return [num(f.energy_kwh), num(f.location_kg), num(f.market_kg), pct(f.covered_share), uses_text(f)]
    out += table(["Phase", *head], [[p.phase, *cells(p)] for p in s.phases])
    out += table(["Project", *head], [[p.project, *cells(p)] for p in s.projects]
                  + [[Md("**total**"), *cells(s.total)]])
    if s.instruments:
        out += table(["Instrument", "Kind", "Scope", "Valid (UTC)", "Quantity (MWh)", "Factor (g/kWh)",
                       "Applied (MWh)", "Unused (MWh)"],
                      [[i.name, i.certificate or i.kind, i.zone or ", ".join(i.clusters), f"{i.start} .. {i.end}",
                        "all consumption" if i.mwh is None else f"{i.mwh:,.3f}", f"{i.g_per_kwh:g}",
                        f"{i.applied_kwh / 1000:,.3f}",
                        "-" if i.unused_kwh is None else f"{i.unused_kwh / 1000:,.3f}"] for i in s.instruments])
    if s.residual_mixes:
        out += table(["Residual mix", "Year", "Factor (g/kWh)", "Energy priced (kWh)", "Source"],
                      [[m.zone, m.year, f"{m.g_per_kwh:g}", num(m.energy_kwh), m.source] for m in s.residual_mixes])
    out += [f"> {cell(w)}" for w in s.warnings] + ([""] if s.warnings else [])
    out += [f"Method: {cell(s.statement)}", ""]
    return out


# -- disclosure-ready figures -----------------------------------------------------------------------------

def _fixed(x: float) -> str:
    """MWh and tonnes: three decimals (a month of a small cluster is a fraction of a MWh)."""
    return f"{x:,.3f}"


def disclosure_lines(r: Report) -> list[str]:
    """The ESRS E1-style table (all projects) and the EU AI Act Annex XI training energy (a project)."""
    out: list[str] = []
    if r.esrs_e1 is not None:
        out += esrs_e1_lines(r.esrs_e1)
    if r.annex_xi is not None:
        out += annex_xi_lines(r.annex_xi)
    if r.sci is not None:
        out += sci_lines(r.sci)
    return out


SCI_TITLE = "## SCI: emissions per functional unit"
SCI_NONE = ("No job of this report carries functional units: add the ledger columns units and unit_name (e.g. "
            "tokens) to state g CO2eq per unit.")


def sci_lines(c: Sci) -> list[str]:
    out = [SCI_TITLE, ""]
    if not c.rows:
        return out + [SCI_NONE, ""]
    out += table(["Phase", "Unit", "Units", "Jobs", "Share of the phase's energy", "E x I (g CO2eq)",
                   "M (g CO2eq)", "g CO2eq per unit", "per 1,000", "per 1,000,000"],
                  [[x.phase, x.unit_name, num(x.units), x.jobs, pct(x.energy_share), num(x.operational_g),
                    num(x.embodied_g), num(x.g_per_unit), num(x.g_per_thousand_units),
                    num(x.g_per_million_units)] for x in c.rows])
    out += [f"(Method: {cell(c.method)}.)", ""]
    return out


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


# -- uncertainty bands -------------------------------------------------------------------------------------

def band(b: Band) -> str:
    """'12.3 kg (band 10.1–15.0 kg)'."""
    return f"{num(b.emissions_kg)} kg (band {num(b.low_kg)}\u2013{num(b.high_kg)} kg)"


def band_line(u: Uncertainty | None) -> list[str]:
    if u is None:
        return []
    basis = " (Scope 2 market-based)" if u.basis == "market" else ""
    return [f"Uncertainty{basis}: {band(u.total)} of CO2eq, every input at its low, then at its high bound "
            "(see Uncertainty bands).", ""]


def uncertainty_lines(u: Uncertainty) -> list[str]:
    out = ["## Uncertainty bands", ""]
    rows: list[list[Any]] = [[p.name, p.label or "", band(p)] for p in u.phases]
    rows.append([Md("**total**"), "", Md(f"**{cell(band(u.total))}**")])
    head = "Emissions, market-based (kg CO2eq, band)" if u.basis == "market" else "Emissions (kg CO2eq, band)"
    out += table(["Phase", "Label", head], rows)
    if u.projects:
        out += table(["Project", head], [[p.name, band(p)] for p in u.projects])
    out += ["Bounds (relative, by how each input was obtained):", ""]
    out += table(["Input", "Class", "Low", "High", "Source"],
                  [[b.input, b.quality, signed_pct(b.low_pct), signed_pct(b.high_pct), b.source] for b in u.bounds])
    out += [f"Method: {cell(u.method)}; {cell(u.note)}.", ""]
    return out
