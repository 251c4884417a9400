"""The Markdown of the report's self-contained sections: Scope 2 (location- and market-based), the disclosure-ready
figures (ESRS E1, EU AI Act Annex XI, SCI per unit), the uncertainty bands and the node power (BMC) data quality;
and the table helpers all the Markdown shares (markdown.py renders the report and calls these).

Every string taken from the report goes through `names.md` (names come from users: see names.py); what these
modules write themselves as markup is marked `Md` so a table leaves it alone."""

from __future__ import annotations

from typing import Any

from .fmt import num, pct, signed_pct
from .names import md
from .types import Band, NodePower, Scope2, Scope2Figures, Uncertainty


class Md(str):
    """Markdown wattprint wrote (bold, emphasis), kept as it is in a table cell."""


def cell(text: Any) -> str:
    return text if isinstance(text, Md) else md(text)


def table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return out + [""]


# -- node power (BMC) ------------------------------------------------------------------------------------

def node_lines(n: NodePower) -> list[str]:
    """The node layer's inputs and their checks (data_quality.node)."""
    text = (f"Node power (BMC): {n.bmc_hours:,} of {n.node_hours:,} node-hours on {n.nodes_with_bmc} of {n.nodes} "
            f"nodes read by their BMC ({pct(n.power_integrated_share)} of that energy integrated from a power gauge, "
            f"{n.power_integrated_hours:,} node-hours); node energy {num(n.node_energy_kwh)} kWh = GPU boards "
            f"{num(n.gpu_energy_kwh)} + RAPL {num(n.rapl_energy_kwh)} + node residual {num(n.residual_kwh)}"
            + (f" - deficit {num(n.deficit_kwh)}" if n.deficit_hours else "") + " kWh.")
    if n.hours_without_bmc:
        text += f" No BMC data in {n.hours_without_bmc:,} node-hours: the node layer is absent there."
    if n.deficit_hours:
        text += (f" **The BMC read less than the GPUs and RAPL in {n.deficit_hours:,} node-hours** (below the GPU "
                 f"boards alone in {n.below_gpu_hours:,}): their residual is counted as 0.")
    if n.hours_without_rapl:
        text += f" {n.hours_without_rapl:,} node-hours had no RAPL: their residual holds the CPUs' energy too."
    out = [Md(text), ""]
    if n.issues:
        out += table(["Cluster", "Node", "Hours", "Without BMC", "BMC < GPUs + RAPL", "BMC < GPU boards",
                      "Deficit (kWh)", "First such hours (UTC)"],
                     [[i.cluster, i.hostname, i.hours, i.hours_without_bmc, i.deficit_hours, i.below_gpu_hours,
                       num(i.deficit_kwh), ", ".join(i.deficit_at[:5]) + (", ..." if i.deficit_hours > 5 else "")
                       or "-"] for i in n.issues])
    return out


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
