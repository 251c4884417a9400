"""The report as Markdown: phase blocks in the style of the IDEFICS model card's "Environmental Impact"
section, so the top drops straight into a model card, then the layers, data quality and what-if.

Reads the typed report (types.Report; a report dict is read with Report.from_dict). The host (CPU) figures are
optional there (None) because an older schema_version 1 report lacks them; this version's reports always have them.

Every string taken from the report goes through `names.md` (names come from users: see names.py); what this
module writes itself as markup is marked `_Md` so a table leaves it alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .fmt import intensity, num, pct, signed_pct, tonnes_or_kg
from .names import md
from .types import (
    AnnexXi,
    Band,
    EqualShare,
    EsrsE1,
    FleetSections,
    GpuCounters,
    HeldIdle,
    Phase,
    ProjectPhase,
    ProjectRow,
    Report,
    Sci,
    Scope2,
    Scope2Figures,
    TimeShift,
    TimeShiftOption,
    TopJob,
    Uncertainty,
    as_report,
)
from .vocabulary import CPU_ENERGY_QUALITY, ENERGY_QUALITY, INTENSITY_QUALITY, labelled


class _Md(str):
    """Markdown this module wrote (bold, emphasis), kept as it is in a table cell."""


ADJUSTMENT = "Scope 2 market-based adjustment (contractual instruments and residual mixes; see Scope 2)"


def _cell(text: Any) -> str:
    return text if isinstance(text, _Md) else md(text)


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return out + [""]


def _hours(p: Phase) -> str:
    """'48.0 hours (192 GPU-hours, 1,234 CPU core-hours, 1 job)', or without wall-clock hours the counts alone."""
    parts = [f"{num(p.gpu_hours)} GPU-hours"]
    if p.cpu_hours:
        parts.append(f"{num(p.cpu_hours)} CPU core-hours")
    if p.jobs:
        parts.append(f"{p.jobs} job{'s' if p.jobs != 1 else ''}")
    hours = p.wall_clock_hours
    return f"{num(hours)} hours ({', '.join(parts)})" if hours is not None else ", ".join(parts)


def counters_line(c: GpuCounters) -> str:
    """The GPU counter check in one sentence (data_quality.gpu_counters)."""
    if not c.gpu_hours:
        return "GPU energy counters: none of these GPUs' hardware energy counters was ingested, nothing to check."
    text = (f"GPU energy counters: {c.gpu_hours:,} GPU-hours checked, {num(c.priced_kwh)} kWh priced against "
            f"the counters' {num(c.counter_kwh)} kWh; ")
    if c.difference_gpu_hours:
        text += f"**{c.difference_gpu_hours:,} GPU-hours differ** ({num(c.difference_kwh)} kWh)."
    else:
        text += "no GPU-hour differs beyond rounding."
    return text


def held_idle_line(h: HeldIdle, market: bool = False) -> str:
    """The held-but-idle total in one sentence (held_idle); location-based under a market-based headline too."""
    jobs = f"{h.jobs:,} job{'s' if h.jobs != 1 else ''}"
    return (f"Energy of held but idle GPUs: {num(h.energy_kwh, 'kWh')}, {num(h.emissions_kg)} kg of CO2eq "
            + ("location-based " if market else "") +
            f"({pct(h.gpu_energy_share)} of the GPU energy), {num(h.gpu_hours)} GPU-hours held while idle by {jobs}. "
            "It is a part of the GPU energy above, not added to it.")


def equal_share_line(e: EqualShare) -> str:
    """The equal-share fallback in one sentence (data_quality.equal_share)."""
    return (f"Equal-share fallback (a shared GPU split equally, without per-process utilisation): "
            f"{num(e.gpu_hours)} GPU-hours, {pct(e.share)} of {num(e.shared_gpu_hours)} GPU-hours on GPUs with more "
            "than one job in the hour.")


def energy_text(p: Phase) -> str:
    """'125 kWh of GPU energy, 10.2 kWh of CPU energy (package 8.1, DRAM 2.1)': the phase's own energy."""
    text = f"{num(p.energy_kwh, 'kWh')} of GPU energy"
    if p.cpu_energy_kwh:
        text += f", {num(p.cpu_energy_kwh, 'kWh')} of CPU energy"
        if p.cpu_package_kwh or p.cpu_dram_kwh:
            text += f" (package {num(p.cpu_package_kwh)}, DRAM {num(p.cpu_dram_kwh)})"
    return text


def _phase(p: Phase) -> list[str]:
    tag = " (estimated (TDP))" if p.label != "measured" else ""
    return [
        f"*{_cell(p.title)}*{tag}",
        f"- Hardware Type: {_cell(p.hardware_text)}",
        f"- Hours used: {_hours(p)}",
        f"- Cloud Provider: {_cell(p.provider_text or '-')}",
        f"- Compute Region: {_cell(p.region_text or '-')}",
        f"- Energy: {energy_text(p)}"
        + (" (estimated from TDP)" if p.label != "measured" else " (measured)"),
        f"- Carbon Emitted: {num(p.emissions_kg)} kg of CO2eq" + market_note(p.location_kg),
        "",
    ]


def market_note(location_kg: float | None, tons: bool = False) -> str:
    """' (Scope 2 market-based; location-based 30.7 kg)' beside a market-based figure; '' beside a location-based
    one (location_kg None)."""
    if location_kg is None:
        return ""
    return f" (Scope 2 market-based; location-based {tonnes_or_kg(location_kg) if tons else num(location_kg, 'kg')})"


def render(report: Report | Mapping[str, Any]) -> str:
    r = as_report(report)
    out = [f"# {_cell(r.title)}", ""]
    w = r.window
    out += [f"Window: {_cell(w.start)} .. {_cell(w.end)} (UTC). Generated {_cell(r.generated_at)} by "
            "wattprint.", ""]
    dq = r.data_quality
    if dq.warnings:
        out += ["> **Data quality: read these numbers with care.**"]
        out += [f"> - {_cell(x)}" for x in dq.warnings]
        out += [""]
    out += ["## Environmental Impact", ""]
    for p in r.phases:
        out += _phase(p)
    t = r.total
    scope = f"the {_cell(r.project)} project" if r.project else "all projects"
    out += [f"This means that the total carbon footprint of {scope} in this window can be estimated at "
            f"{tonnes_or_kg(t.emissions_kg)} of CO2eq{market_note(t.location_kg, tons=True)}, which is "
            f"{_cell(r.equivalences.sentence)}.", ""]
    out += _band_line(r.uncertainty)
    out += [f"Method: {_cell(r.method.statement)}", ""]

    out += ["## Accounting layers", ""]
    rows: list[list[Any]] = [[x.title, num(x.energy_kwh), num(x.emissions_kg), "yes" if x.included else "no"]
                             for x in r.layers]
    market = t.location_kg is not None      # the layers are location-based: the adjustment is a line of its own
    if market:
        rows.append([ADJUSTMENT, "-", num(t.emissions_kg - (t.location_kg or 0.0)), "yes"])
    rows.append([_Md("**headline total" + (" (Scope 2 market-based)**" if market else "**")),
                 num(t.facility_energy_kwh), _Md(f"**{num(t.emissions_kg)}**"), ""])
    out += _table(["Layer", "Energy (kWh)", "Emissions (kg CO2eq)", "In headline"], rows)
    out += ["Per phase:", ""]
    out += _table(["Phase", "GPU (kg)", "CPU (kg)", "Idle share (kg)", "PUE overhead (kg)", "Embodied (kg)",
                   *(["Scope 2 market adjustment (kg)"] if market else []), "Headline (kg)"],
                  [[f"{p.phase}" + (" (estimated)" if p.label != "measured" else ""),
                    num(p.layers.gpu.emissions_kg), num(p.layers.cpu.emissions_kg if p.layers.cpu else None),
                    num(p.layers.idle.emissions_kg), num(p.layers.pue.emissions_kg),
                    num(p.layers.embodied.emissions_kg),
                    *([num(p.emissions_kg - (p.location_kg if p.location_kg is not None else p.emissions_kg))]
                      if market else []), num(p.emissions_kg)] for p in r.phases])

    if r.scope2 is not None:
        out += _scope2(r.scope2)
    out += _disclosure(r)
    if r.held_idle is not None:
        out += _held_idle(r.held_idle, market)
    out += ["## Data quality", ""]
    e, i = dq.energy, dq.intensity
    out += _table(["Energy measured by", "Share"],
                  [[label, pct(v)] for label, v in labelled(e.to_dict(), ENERGY_QUALITY)])
    if dq.cpu_energy is not None:
        out += _table(["CPU energy measured by", "Share"],
                      [[label, pct(v)] for label, v in labelled(dq.cpu_energy.to_dict(), CPU_ENERGY_QUALITY)])
    out += _table(["Energy priced with", "Share"],
                  [[label, pct(v)] for label, v in labelled(i.to_dict(), INTENSITY_QUALITY)])
    g = dq.gaps
    restarts = f", {g.restarts} of them ended in a counter restart" if g.restarts else ""
    out += [f"Telemetry gaps (per GPU): {g.count} ({num(g.hours)} GPU-hours{restarts}). "
            f"Ledger jobs without measured energy: {dq.jobs_without_telemetry}.", ""]
    out += [counters_line(dq.gpu_counters), ""]
    if dq.equal_share is not None:
        out += [equal_share_line(dq.equal_share), ""]
    rapl = dq.rapl
    if rapl is not None:
        out += [f"Nodes without readable RAPL (CPU energy): {rapl.nodes_without} of {rapl.nodes}, carrying "
                f"{pct(rapl.gpu_energy_share)} of the measured GPU energy.", ""]
        if rapl.without:
            out += _table(["Cluster", "Node", "Why", "GPU energy share"],
                          [[n.cluster, n.hostname, n.reason, pct(n.gpu_energy_share)] for n in rapl.without])

    wi = r.whatif
    out += ["## What if it had run elsewhere", ""]
    if wi.options and wi.best is not None:
        out += _table(["Cluster", "Region", "Zone", "PUE", "Avg intensity", "Emissions (kg)", "vs actual (kg)"],
                      [[o.cluster, o.region or "-", o.zone, f"{o.pue:g}",
                        intensity(o.intensity_g_per_kwh), num(o.emissions_kg),
                        ("+" if o.delta_kg > 0 else "") + num(o.delta_kg)] for o in wi.options])
        b = wi.best
        out += [f"Actual{' (location-based)' if market else ''}: {num(wi.actual_kg)} kg. Best: "
                f"{_cell(b.cluster)} ({_cell(b.zone)}), "
                f"{num(b.emissions_kg)} kg: a saving of {num(wi.saving_kg)} kg ({pct(wi.saving_pct)}).", ""]
    out += [f"({_cell(wi.note)}.)", ""]
    if r.time_shift is not None:
        out += _time_shift(r.time_shift, market)
    if r.uncertainty is not None:
        out += _uncertainty(r.uncertainty)

    if r.fleet is not None:
        out += _fleet(r.fleet, market)
    out += ["## Sources", "",
            f"- Equivalences: {_cell(r.equivalences.source)}.",
            f"- Embodied emissions: {_cell(r.method.embodied.source)}.", ""]
    return "\n".join(out)


def uses_text(f: Scope2Figures) -> str:
    """The instruments that covered some of `f`, with the MWh each applied: 'ppa-wind 9.000 MWh, go-fr ...'."""
    return ", ".join(f"{u.name} {u.energy_kwh / 1000:,.3f} MWh" for u in f.instruments) or "none"


def scope2_line(s: Scope2) -> str:
    """Both Scope 2 figures of the report's scope in one sentence."""
    t = s.total
    return (f"Scope 2 location-based: {num(t.location_kg)} kg CO2eq; market-based: {num(t.market_kg)} kg CO2eq, "
            f"{pct(t.covered_share)} of the {num(t.energy_kwh)} kWh covered by contractual instruments "
            f"({uses_text(t)}). The headline is {s.basis}-based.")


def _scope2(s: Scope2) -> list[str]:
    out = ["## Scope 2: location-based and market-based", "", _cell(scope2_line(s)), ""]
    head = ["Energy (kWh)", "Location-based (kg)", "Market-based (kg)", "Covered by instruments", "Instruments used"]

    def cells(f: Scope2Figures) -> list[Any]:
        return [num(f.energy_kwh), num(f.location_kg), num(f.market_kg), pct(f.covered_share), uses_text(f)]
    out += _table(["Phase", *head], [[p.phase, *cells(p)] for p in s.phases])
    out += _table(["Project", *head], [[p.project, *cells(p)] for p in s.projects]
                  + [[_Md("**total**"), *cells(s.total)]])
    if s.instruments:
        out += _table(["Instrument", "Kind", "Scope", "Valid (UTC)", "Quantity (MWh)", "Factor (g/kWh)",
                       "Applied (MWh)", "Unused (MWh)"],
                      [[i.name, i.certificate or i.kind, i.zone or ", ".join(i.clusters), f"{i.start} .. {i.end}",
                        "all consumption" if i.mwh is None else f"{i.mwh:,.3f}", f"{i.g_per_kwh:g}",
                        f"{i.applied_kwh / 1000:,.3f}",
                        "-" if i.unused_kwh is None else f"{i.unused_kwh / 1000:,.3f}"] for i in s.instruments])
    if s.residual_mixes:
        out += _table(["Residual mix", "Year", "Factor (g/kWh)", "Energy priced (kWh)", "Source"],
                      [[m.zone, m.year, f"{m.g_per_kwh:g}", num(m.energy_kwh), m.source] for m in s.residual_mixes])
    out += [f"> {_cell(w)}" for w in s.warnings] + ([""] if s.warnings else [])
    out += [f"Method: {_cell(s.statement)}", ""]
    return out


def _time_shift(t: TimeShift, market: bool = False) -> list[str]:
    out = ["## What if it had started later", ""]
    if not t.phases:
        return out + ["No measured hours to move.", ""]

    def later(o: TimeShiftOption) -> str:
        return f"+{o.best_shift_hours} h" if o.best_shift_hours else "as it ran"

    actual = "Actual, location-based (kg)" if market else "Actual (kg)"
    out += _table(["Phase", "Energy (kWh)", actual, "Cleanest start", "Then (kg)", "Saving (kg)", "Saving",
                   f"Later starts with measured intensity (of {t.slack_hours})"],
                  [[o.phase, num(o.energy_kwh), num(o.actual_kg), later(o), num(o.best_kg), num(o.saving_kg),
                    pct(o.saving_pct), o.shifts_measured] for o in t.phases])
    out += [f"Each phase at its cleanest start within {t.slack_hours} h: a saving of {num(t.saving_kg)} kg "
            f"({pct(t.saving_pct)}).", ""]
    if t.jobs:
        out += ["Top jobs:", ""]
        out += _table(["Cluster", "Job", "Project", "Phase", actual, "Cleanest start", "Then (kg)",
                       "Saving (kg)", "Saving"],
                      [[o.cluster, o.job_id, o.project, o.phase, num(o.actual_kg), later(o), num(o.best_kg),
                        num(o.saving_kg), pct(o.saving_pct)] for o in t.jobs])
    return out + [f"({_cell(t.note)}.)", ""]


def _held_idle(h: HeldIdle, market: bool = False) -> list[str]:
    out = ["## Held but idle GPUs", "", held_idle_line(h, market), ""]
    if h.top_jobs:
        out += _table(["Cluster", "Job", "Project", "Phase", "User", "GPUs", "Held-idle GPU-hours", "Energy (kWh)",
                       "Share of its GPU energy", "Emissions, location-based (kg)" if market else "Emissions (kg)"],
                      [[j.cluster, j.job_id, j.project, j.phase, j.user or "-", j.gpus, num(j.gpu_hours),
                        num(j.energy_kwh), pct(j.gpu_energy_share), num(j.emissions_kg)] for j in h.top_jobs])
    return out


def _fleet(f: FleetSections, market: bool = False) -> list[str]:
    """Under a market-based headline the projects, their phases, the top jobs and the window before are
    market-based, each with its location-based figure in a column of its own; clusters are location-based."""
    emitted = ["Emissions, market-based (kg)", "Location-based (kg)"] if market else ["Emissions (kg)"]

    def kg(x: ProjectRow | ProjectPhase | TopJob) -> list[str]:
        return [num(x.emissions_kg), num(x.location_kg)] if market else [num(x.emissions_kg)]
    out = ["## Projects", ""]
    out += _table(["Project", "GPU energy (kWh)", "CPU energy (kWh)", "GPU-hours", "CPU core-hours", *emitted,
                   "Previous, market-based (kg)" if market else "Previous (kg)", "Change"],
                  [[p.project, num(p.energy_kwh), num(p.cpu_energy_kwh), num(p.gpu_hours), num(p.cpu_hours),
                    *kg(p), num(p.previous_emissions_kg), signed_pct(p.change_pct)] for p in f.projects])
    out += ["## Projects by phase", ""]
    out += _table(["Project", "Phase", "GPU energy (kWh)", "CPU energy (kWh)", "GPU-hours", "CPU core-hours",
                   *emitted],
                  [[p.project, ph.phase, num(ph.energy_kwh), num(ph.cpu_energy_kwh), num(ph.gpu_hours),
                    num(ph.cpu_hours), *kg(ph)] for p in f.projects for ph in p.phases])
    out += ["## Clusters", ""]
    out += _table(["Cluster", "Provider", "Region", "Zone", "PUE", "GPUs", "GPU energy (kWh)", "Idle share",
                   "CPU sockets", "CPU energy (kWh)", "Host idle share", "Avg intensity",
                   "Emissions incl. PUE, location-based (kg)" if market else "Emissions incl. PUE (kg)"],
                  [[c.cluster, c.provider, c.region or "-", c.zone or "-", f"{c.pue:g}", c.gpus,
                    num(c.energy_kwh), pct(c.idle_share), "-" if c.cpu_sockets is None else c.cpu_sockets,
                    num(c.cpu_energy_kwh), pct(c.cpu_idle_share), intensity(c.intensity_g_per_kwh),
                    num(c.emissions_kg)] for c in f.clusters])
    out += ["## Top jobs by emissions", ""]
    out += _table(["Cluster", "Job", "Project", "Phase", "User", "GPU-hours", "CPU core-hours", "GPU energy (kWh)",
                   "CPU energy (kWh)", *emitted],
                  [[j.cluster, j.job_id, j.project, j.phase, j.user or "-", num(j.gpu_hours), num(j.cpu_hours),
                    num(j.energy_kwh), num(j.cpu_energy_kwh), *kg(j)] for j in f.top_jobs])
    prev, ch = f.previous, f.change
    if prev and ch:
        out += [f"Previous period ({_cell(prev.start)} .. {_cell(prev.end)}): {num(prev.energy_kwh)} kWh of "
                "GPU energy, "
                f"{num(prev.emissions_kg)} kg{market_note(prev.location_kg)}; change: GPU energy "
                f"{signed_pct(ch.energy_pct)}, emissions "
                f"{signed_pct(ch.emissions_pct)}.", ""]
    else:
        out += ["Previous period: no measured data.", ""]
    rc = f.reconciliation
    out += ["## Reconciliation", ""]
    out += _table(["GPU energy", "kWh"],
                  [["whole fleet", num(rc.fleet_energy_kwh)], ["projects' jobs", num(rc.projects_energy_kwh)],
                   ["jobs not in the ledger", num(rc.not_in_ledger_kwh)],
                   ["idle, apportioned to jobs", num(rc.idle_apportioned_kwh)],
                   ["idle, not apportioned", num(rc.idle_unapportioned_kwh)]])
    out += [f"({_cell(rc.note)}.)", ""]
    out += [counters_line(rc.gpu_counters), ""]
    diffs = rc.gpu_counters.differences
    if diffs:
        out += _table(["Hour", "Cluster", "Node", "GPU", "Priced kWh", "Counter kWh", "Cause"],
                      [[d.hour, d.cluster, d.hostname, d.gpu, num(d.priced_kwh), num(d.counter_kwh), d.cause]
                       for d in diffs])
    host = rc.cpu
    if host:
        out += _table(["Host CPU energy (RAPL)", "kWh"],
                      [["whole fleet", num(host.fleet_energy_kwh)],
                       ["projects' jobs", num(host.projects_energy_kwh)],
                       ["jobs not in the ledger", num(host.not_in_ledger_kwh)],
                       ["host idle, apportioned to jobs", num(host.idle_apportioned_kwh)],
                       ["host idle, not apportioned", num(host.idle_unapportioned_kwh)]])
        out += [f"({_cell(host.note)}.)", ""]
    return out


def _fixed(x: float) -> str:
    """MWh and tonnes: three decimals (a month of a small cluster is a fraction of a MWh)."""
    return f"{x:,.3f}"


def _disclosure(r: Report) -> list[str]:
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
    out += _table(["Phase", "Unit", "Units", "Jobs", "Share of the phase's energy", "E x I (g CO2eq)",
                   "M (g CO2eq)", "g CO2eq per unit", "per 1,000", "per 1,000,000"],
                  [[x.phase, x.unit_name, num(x.units), x.jobs, pct(x.energy_share), num(x.operational_g),
                    num(x.embodied_g), num(x.g_per_unit), num(x.g_per_thousand_units),
                    num(x.g_per_million_units)] for x in c.rows])
    out += [f"(Method: {_cell(c.method)}.)", ""]
    return out


def esrs_e1_lines(e: EsrsE1) -> list[str]:
    out = ["## ESRS E1 disclosure (energy, gross Scope 2, embodied Scope 3)", ""]
    out += _table(["Disclosure", "Figure", "Unit"], [
        ["E1-5 energy consumption (electricity)", _fixed(e.energy_mwh), "MWh"],
        ["E1-6 gross Scope 2, location-based", _fixed(e.scope2_location_tco2eq), "tCO2eq"],
        ["E1-6 gross Scope 2, market-based", _fixed(e.scope2_market_tco2eq), "tCO2eq"],
        ["Scope 3 category 2 (capital goods): embodied GPU emissions, amortised, reported apart",
         _fixed(e.scope3_embodied_tco2eq), "tCO2eq"],
    ])
    out += [f"Energy: {_cell(e.energy_included)}. Market-based: {pct(e.market_covered_share)} covered by contractual "
            f"instruments. Embodied emissions are {'in' if e.embodied_in_headline else 'not in'} the headline and "
            "never in Scope 2.", "", f"({_cell(e.note)}.)", ""]
    return out


def annex_xi_lines(a: AnnexXi) -> list[str]:
    out = ["## EU AI Act Annex XI: energy consumption of training", ""]
    if not a.phases:
        return out + [f"No training phase ({', '.join(a.training_phases)}) in this report: no training energy to "
                      f"state ({num(a.other_phases_kwh)} kWh in other phases).", ""]
    out += _table(["Phase", "Measured or estimated", "Energy (kWh)", "Method"],
                  [[p.phase, p.label, num(p.energy_kwh), p.method] for p in a.phases]
                  + [[_Md("**training**"), "", _Md(f"**{num(a.energy_kwh)}**"), ""]])
    split = (f" ({num(a.measured_kwh)} kWh measured, {num(a.estimated_kwh)} kWh estimated)"
             if a.measured_kwh and a.estimated_kwh else "")
    out += [f"Known energy consumption of training: **{num(a.energy_kwh)} kWh**{split}; "
            f"{num(a.other_phases_kwh)} kWh in other phases not counted.", "", f"(Method: {_cell(a.method)}.)", ""]
    return out


# -- uncertainty bands -------------------------------------------------------------------------------------

def band(b: Band) -> str:
    """'12.3 kg (band 10.1–15.0 kg)'."""
    return f"{num(b.emissions_kg)} kg (band {num(b.low_kg)}\u2013{num(b.high_kg)} kg)"


def _band_line(u: Uncertainty | None) -> list[str]:
    if u is None:
        return []
    basis = " (Scope 2 market-based)" if u.basis == "market" else ""
    return [f"Uncertainty{basis}: {band(u.total)} of CO2eq, every input at its low, then at its high bound "
            "(see Uncertainty bands).", ""]


def _uncertainty(u: Uncertainty) -> list[str]:
    out = ["## Uncertainty bands", ""]
    rows: list[list[Any]] = [[p.name, p.label or "", band(p)] for p in u.phases]
    rows.append([_Md("**total**"), "", _Md(f"**{_cell(band(u.total))}**")])
    head = "Emissions, market-based (kg CO2eq, band)" if u.basis == "market" else "Emissions (kg CO2eq, band)"
    out += _table(["Phase", "Label", head], rows)
    if u.projects:
        out += _table(["Project", head], [[p.name, band(p)] for p in u.projects])
    out += ["Bounds (relative, by how each input was obtained):", ""]
    out += _table(["Input", "Class", "Low", "High", "Source"],
                  [[b.input, b.quality, signed_pct(b.low_pct), signed_pct(b.high_pct), b.source] for b in u.bounds])
    out += [f"Method: {_cell(u.method)}; {_cell(u.note)}.", ""]
    return out
