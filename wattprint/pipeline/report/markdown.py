"""The report as Markdown: phase blocks in the style of the IDEFICS model card's "Environmental Impact"
section, so the top drops straight into a model card, then the layers, data quality and what-if.

Reads the typed report (types.Report; a report dict is read with Report.from_dict). The host (CPU) figures are
optional there (None) because an older schema_version 1 report lacks them; this version's reports always have them.

Every string taken from the report goes through `names.md` (names come from users: see names.py); what this
module writes itself as markup is marked `Md` so a table leaves it alone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .fmt import intensity, num, pct, signed_pct, tonnes_or_kg
from .md_disclosure import disclosure_lines, sci_training_lines
from .md_table import Md, cell, table
from .sci_card import training_sci
from .types import (
    Band,
    EqualShare,
    FleetSections,
    GpuCounters,
    HeldIdle,
    Phase,
    Report,
    Scope2,
    Scope2Figures,
    TimeShift,
    TimeShiftOption,
    Uncertainty,
    as_report,
)
from .vocabulary import CPU_ENERGY_QUALITY, ENERGY_QUALITY, INTENSITY_QUALITY, labelled


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


def held_idle_line(h: HeldIdle) -> str:
    """The held-but-idle total in one sentence (held_idle)."""
    jobs = f"{h.jobs:,} job{'s' if h.jobs != 1 else ''}"
    return (f"Energy of held but idle GPUs: {num(h.energy_kwh, 'kWh')}, {num(h.emissions_kg)} kg of CO2eq "
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
        f"*{cell(p.title)}*{tag}",
        f"- Hardware Type: {cell(p.hardware_text)}",
        f"- Hours used: {_hours(p)}",
        f"- Cloud Provider: {cell(p.provider_text or '-')}",
        f"- Compute Region: {cell(p.region_text or '-')}",
        f"- Energy: {energy_text(p)}"
        + (" (estimated from TDP)" if p.label != "measured" else " (measured)"),
        f"- Carbon Emitted: {num(p.emissions_kg)} kg of CO2eq",
        "",
    ]


def render(report: Report | Mapping[str, Any]) -> str:
    r = as_report(report)
    out = [f"# {cell(r.title)}", ""]
    w = r.window
    out += [f"Window: {cell(w.start)} .. {cell(w.end)} (UTC). Generated {cell(r.generated_at)} by "
            "wattprint.", ""]
    dq = r.data_quality
    if dq.warnings:
        out += ["> **Data quality: read these numbers with care.**"]
        out += [f"> - {cell(x)}" for x in dq.warnings]
        out += [""]
    out += ["## Environmental Impact", ""]
    for p in r.phases:
        out += _phase(p)
    t = r.total
    scope = f"the {cell(r.project)} project" if r.project else "all projects"
    out += [f"This means that the total carbon footprint of {scope} in this window can be estimated at "
            f"{tonnes_or_kg(t.emissions_kg)} of CO2eq, which is {cell(r.equivalences.sentence)}.", ""]
    out += _band_line(r.uncertainty)
    if r.kind == "project":
        out += sci_training_lines(training_sci(r.sci))
    out += [f"Method: {cell(r.method.statement)}", ""]

    out += ["## Accounting layers", ""]
    rows: list[list[Any]] = [[x.title, num(x.energy_kwh), num(x.emissions_kg), "yes" if x.included else "no"]
                             for x in r.layers]
    rows.append([Md("**headline total**"), num(t.facility_energy_kwh), Md(f"**{num(t.emissions_kg)}**"), ""])
    out += table(["Layer", "Energy (kWh)", "Emissions (kg CO2eq)", "In headline"], rows)
    out += ["Per phase:", ""]
    out += table(["Phase", "GPU (kg)", "CPU (kg)", "Idle share (kg)", "PUE overhead (kg)", "Embodied (kg)",
                   "Headline (kg)"],
                  [[f"{p.phase}" + (" (estimated)" if p.label != "measured" else ""),
                    num(p.layers.gpu.emissions_kg), num(p.layers.cpu.emissions_kg if p.layers.cpu else None),
                    num(p.layers.idle.emissions_kg), num(p.layers.pue.emissions_kg),
                    num(p.layers.embodied.emissions_kg), num(p.emissions_kg)] for p in r.phases])

    if r.scope2 is not None:
        out += _scope2(r.scope2)
    out += disclosure_lines(r)
    if r.held_idle is not None:
        out += _held_idle(r.held_idle)
    out += ["## Data quality", ""]
    e, i = dq.energy, dq.intensity
    out += table(["Energy measured by", "Share"],
                  [[label, pct(v)] for label, v in labelled(e.to_dict(), ENERGY_QUALITY)])
    if dq.cpu_energy is not None:
        out += table(["CPU energy measured by", "Share"],
                      [[label, pct(v)] for label, v in labelled(dq.cpu_energy.to_dict(), CPU_ENERGY_QUALITY)])
    out += table(["Energy priced with", "Share"],
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
            out += table(["Cluster", "Node", "Why", "GPU energy share"],
                          [[n.cluster, n.hostname, n.reason, pct(n.gpu_energy_share)] for n in rapl.without])

    wi = r.whatif
    out += ["## What if it had run elsewhere", ""]
    if wi.options and wi.best is not None:
        out += table(["Cluster", "Region", "Zone", "PUE", "Avg intensity", "Emissions (kg)", "vs actual (kg)"],
                      [[o.cluster, o.region or "-", o.zone, f"{o.pue:g}",
                        intensity(o.intensity_g_per_kwh), num(o.emissions_kg),
                        ("+" if o.delta_kg > 0 else "") + num(o.delta_kg)] for o in wi.options])
        b = wi.best
        out += [f"Actual: {num(wi.actual_kg)} kg. Best: {cell(b.cluster)} ({cell(b.zone)}), "
                f"{num(b.emissions_kg)} kg: a saving of {num(wi.saving_kg)} kg ({pct(wi.saving_pct)}).", ""]
    out += [f"({cell(wi.note)}.)", ""]
    if r.time_shift is not None:
        out += _time_shift(r.time_shift)
    if r.uncertainty is not None:
        out += _uncertainty(r.uncertainty)

    if r.fleet is not None:
        out += _fleet(r.fleet)
    out += ["## Sources", "",
            f"- Equivalences: {cell(r.equivalences.source)}.",
            f"- Embodied emissions: {cell(r.method.embodied.source)}.", ""]
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


def _time_shift(t: TimeShift) -> list[str]:
    out = ["## What if it had started later", ""]
    if not t.phases:
        return out + ["No measured hours to move.", ""]

    def later(o: TimeShiftOption) -> str:
        return f"+{o.best_shift_hours} h" if o.best_shift_hours else "as it ran"

    out += table(["Phase", "Energy (kWh)", "Actual (kg)", "Cleanest start", "Then (kg)", "Saving (kg)", "Saving",
                   f"Later starts with measured intensity (of {t.slack_hours})"],
                  [[o.phase, num(o.energy_kwh), num(o.actual_kg), later(o), num(o.best_kg), num(o.saving_kg),
                    pct(o.saving_pct), o.shifts_measured] for o in t.phases])
    out += [f"Each phase at its cleanest start within {t.slack_hours} h: a saving of {num(t.saving_kg)} kg "
            f"({pct(t.saving_pct)}).", ""]
    if t.jobs:
        out += ["Top jobs:", ""]
        out += table(["Cluster", "Job", "Project", "Phase", "Actual (kg)", "Cleanest start", "Then (kg)",
                       "Saving (kg)", "Saving"],
                      [[o.cluster, o.job_id, o.project, o.phase, num(o.actual_kg), later(o), num(o.best_kg),
                        num(o.saving_kg), pct(o.saving_pct)] for o in t.jobs])
    return out + [f"({cell(t.note)}.)", ""]


def _held_idle(h: HeldIdle) -> list[str]:
    out = ["## Held but idle GPUs", "", held_idle_line(h), ""]
    if h.top_jobs:
        out += table(["Cluster", "Job", "Project", "Phase", "User", "GPUs", "Held-idle GPU-hours", "Energy (kWh)",
                       "Share of its GPU energy", "Emissions (kg)"],
                      [[j.cluster, j.job_id, j.project, j.phase, j.user or "-", j.gpus, num(j.gpu_hours),
                        num(j.energy_kwh), pct(j.gpu_energy_share), num(j.emissions_kg)] for j in h.top_jobs])
    return out


def _fleet(f: FleetSections) -> list[str]:
    out = ["## Projects", ""]
    out += table(["Project", "GPU energy (kWh)", "CPU energy (kWh)", "GPU-hours", "CPU core-hours", "Emissions (kg)",
                   "Previous (kg)", "Change"],
                  [[p.project, num(p.energy_kwh), num(p.cpu_energy_kwh), num(p.gpu_hours), num(p.cpu_hours),
                    num(p.emissions_kg), num(p.previous_emissions_kg), signed_pct(p.change_pct)] for p in f.projects])
    out += ["## Projects by phase", ""]
    out += table(["Project", "Phase", "GPU energy (kWh)", "CPU energy (kWh)", "GPU-hours", "CPU core-hours",
                   "Emissions (kg)"],
                  [[p.project, ph.phase, num(ph.energy_kwh), num(ph.cpu_energy_kwh), num(ph.gpu_hours),
                    num(ph.cpu_hours), num(ph.emissions_kg)] for p in f.projects for ph in p.phases])
    out += ["## Clusters", ""]
    out += table(["Cluster", "Provider", "Region", "Zone", "PUE", "GPUs", "GPU energy (kWh)", "Idle share",
                   "CPU sockets", "CPU energy (kWh)", "Host idle share", "Avg intensity", "Emissions incl. PUE (kg)"],
                  [[c.cluster, c.provider, c.region or "-", c.zone or "-", f"{c.pue:g}", c.gpus,
                    num(c.energy_kwh), pct(c.idle_share), "-" if c.cpu_sockets is None else c.cpu_sockets,
                    num(c.cpu_energy_kwh), pct(c.cpu_idle_share), intensity(c.intensity_g_per_kwh),
                    num(c.emissions_kg)] for c in f.clusters])
    out += ["## Top jobs by emissions", ""]
    out += table(["Cluster", "Job", "Project", "Phase", "User", "GPU-hours", "CPU core-hours", "GPU energy (kWh)",
                   "CPU energy (kWh)", "Emissions (kg)"],
                  [[j.cluster, j.job_id, j.project, j.phase, j.user or "-", num(j.gpu_hours), num(j.cpu_hours),
                    num(j.energy_kwh), num(j.cpu_energy_kwh), num(j.emissions_kg)] for j in f.top_jobs])
    prev, ch = f.previous, f.change
    if prev and ch:
        out += [f"Previous period ({cell(prev.start)} .. {cell(prev.end)}): {num(prev.energy_kwh)} kWh of "
                "GPU energy, "
                f"{num(prev.emissions_kg)} kg; change: GPU energy {signed_pct(ch.energy_pct)}, emissions "
                f"{signed_pct(ch.emissions_pct)}.", ""]
    else:
        out += ["Previous period: no measured data.", ""]
    rc = f.reconciliation
    out += ["## Reconciliation", ""]
    out += table(["GPU energy", "kWh"],
                  [["whole fleet", num(rc.fleet_energy_kwh)], ["projects' jobs", num(rc.projects_energy_kwh)],
                   ["jobs not in the ledger", num(rc.not_in_ledger_kwh)],
                   ["idle, apportioned to jobs", num(rc.idle_apportioned_kwh)],
                   ["idle, not apportioned", num(rc.idle_unapportioned_kwh)]])
    out += [f"({cell(rc.note)}.)", ""]
    out += [counters_line(rc.gpu_counters), ""]
    diffs = rc.gpu_counters.differences
    if diffs:
        out += table(["Hour", "Cluster", "Node", "GPU", "Priced kWh", "Counter kWh", "Cause"],
                      [[d.hour, d.cluster, d.hostname, d.gpu, num(d.priced_kwh), num(d.counter_kwh), d.cause]
                       for d in diffs])
    host = rc.cpu
    if host:
        out += table(["Host CPU energy (RAPL)", "kWh"],
                      [["whole fleet", num(host.fleet_energy_kwh)],
                       ["projects' jobs", num(host.projects_energy_kwh)],
                       ["jobs not in the ledger", num(host.not_in_ledger_kwh)],
                       ["host idle, apportioned to jobs", num(host.idle_apportioned_kwh)],
                       ["host idle, not apportioned", num(host.idle_unapportioned_kwh)]])
        out += [f"({cell(host.note)}.)", ""]
    return out


# -- uncertainty bands -------------------------------------------------------------------------------------

def band(b: Band) -> str:
    """'12.3 kg (band 10.1–15.0 kg)'."""
    return f"{num(b.emissions_kg)} kg (band {num(b.low_kg)}\u2013{num(b.high_kg)} kg)"


def _band_line(u: Uncertainty | None) -> list[str]:
    if u is None:
        return []
    return [f"Uncertainty: {band(u.total)} of CO2eq, every input at its low, then at its high bound "
            "(see Uncertainty bands).", ""]


def _uncertainty(u: Uncertainty) -> list[str]:
    out = ["## Uncertainty bands", ""]
    rows: list[list[Any]] = [[p.name, p.label or "", band(p)] for p in u.phases]
    rows.append([Md("**total**"), "", Md(f"**{cell(band(u.total))}**")])
    out += table(["Phase", "Label", "Emissions (kg CO2eq, band)"], rows)
    if u.projects:
        out += table(["Project", "Emissions (kg CO2eq, band)"], [[p.name, band(p)] for p in u.projects])
    out += ["Bounds (relative, by how each input was obtained):", ""]
    out += table(["Input", "Class", "Low", "High", "Source"],
                  [[b.input, b.quality, signed_pct(b.low_pct), signed_pct(b.high_pct), b.source] for b in u.bounds])
    out += [f"Method: {cell(u.method)}; {cell(u.note)}.", ""]
    return out
