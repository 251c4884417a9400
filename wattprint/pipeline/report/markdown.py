"""The report as Markdown: phase blocks in the style of the IDEFICS model card's "Environmental Impact"
section, so the top drops straight into a model card, then the layers, data quality and what-if.

Reads the typed report (types.Report; a report dict is read with Report.from_dict). The host (CPU) figures are
optional there (None) because an older schema_version 1 report lacks them; this version's reports always have them.

Every string taken from the report goes through `names.md` (names come from users: see names.py); what this
module writes itself as markup is marked `Md` so a table leaves it alone (markdown_sections.py: the table helpers,
and the Scope 2, disclosure and uncertainty sections)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .fmt import intensity, num, pct, signed_pct, tonnes_or_kg
from .markdown_disclosure import disclosure_lines, sci_training_lines
from .markdown_marginal import marginal_lines
from .markdown_sections import (
    Md,
    band_line,
    cell,
    node_lines,
    scope2_lines,
    table,
    uncertainty_lines,
)
from .sci_card import training_sci
from .types import (
    AmdExporter,
    EqualShare,
    FleetSections,
    GpuCounters,
    HeldIdle,
    Phase,
    ProjectPhase,
    ProjectRow,
    Report,
    TimeShift,
    TimeShiftOption,
    TopJob,
    as_report,
)
from .vocabulary import CPU_ENERGY_QUALITY, ENERGY_QUALITY, INTENSITY_QUALITY, labelled

ADJUSTMENT = "Scope 2 market-based adjustment (contractual instruments and residual mixes; see Scope 2)"


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


def amd_partitions_line(a: AmdExporter) -> str:
    """AMD GPUs' secondary partitions in one sentence (data_quality.amd_exporter)."""
    return (f"AMD GPU partitions: {a.partitions:,} secondary partitions on {a.partition_nodes:,} nodes; their energy "
            "lines (gpu_partition_id other than 0) are not priced, the primary partition's line carries the whole GPU.")


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
            f"{tonnes_or_kg(t.emissions_kg)} of CO2eq{market_note(t.location_kg, tons=True)}, which is "
            f"{cell(r.equivalences.sentence)}.", ""]
    out += band_line(r.uncertainty)
    if r.kind == "project":
        out += sci_training_lines(training_sci(r.sci))
    out += [f"Method: {cell(r.method.statement)}", ""]

    out += ["## Accounting layers", ""]
    rows: list[list[Any]] = [[x.title, num(x.energy_kwh), num(x.emissions_kg), "yes" if x.included else "no"]
                             for x in r.layers]
    market = t.location_kg is not None      # the layers are location-based: the adjustment is a line of its own
    if market:
        rows.append([ADJUSTMENT, "-", num(t.emissions_kg - (t.location_kg or 0.0)), "yes"])
    rows.append([Md("**headline total" + (" (Scope 2 market-based)**" if market else "**")),
                 num(t.facility_energy_kwh), Md(f"**{num(t.emissions_kg)}**"), ""])
    out += table(["Layer", "Energy (kWh)", "Emissions (kg CO2eq)", "In headline"], rows)
    out += ["Per phase:", ""]
    node = "node" in r.method.layers_selected     # a column only in the headline: a listed layer keeps the table
    out += table(["Phase", "GPU (kg)", "CPU (kg)", *(["Node residual (kg)"] if node else []), "Idle share (kg)",
                  "PUE overhead (kg)", "Embodied (kg)", *(["Scope 2 market adjustment (kg)"] if market else []),
                  "Headline (kg)"],
                  [[f"{p.phase}" + (" (estimated)" if p.label != "measured" else ""),
                    num(p.layers.gpu.emissions_kg), num(p.layers.cpu.emissions_kg if p.layers.cpu else None),
                    *([num(p.layers.node.emissions_kg if p.layers.node else None)] if node else []),
                    num(p.layers.idle.emissions_kg), num(p.layers.pue.emissions_kg),
                    num(p.layers.embodied.emissions_kg),
                    *([num(p.emissions_kg - (p.location_kg if p.location_kg is not None else p.emissions_kg))]
                      if market else []), num(p.emissions_kg)] for p in r.phases])

    if r.scope2 is not None:
        out += scope2_lines(r.scope2)
    if r.marginal is not None:
        out += marginal_lines(r.marginal)
    out += disclosure_lines(r)
    if r.held_idle is not None:
        out += _held_idle(r.held_idle, market)
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
    if dq.amd_exporter is not None and dq.amd_exporter.partitions:
        out += [amd_partitions_line(dq.amd_exporter), ""]
    rapl = dq.rapl
    if rapl is not None:
        out += [f"Nodes without readable RAPL (CPU energy): {rapl.nodes_without} of {rapl.nodes}, carrying "
                f"{pct(rapl.gpu_energy_share)} of the measured GPU energy.", ""]
        if rapl.without:
            out += table(["Cluster", "Node", "Why", "GPU energy share"],
                          [[n.cluster, n.hostname, n.reason, pct(n.gpu_energy_share)] for n in rapl.without])
    if dq.node is not None:
        out += node_lines(dq.node)

    wi = r.whatif
    out += ["## What if it had run elsewhere", ""]
    if wi.options and wi.best is not None:
        out += table(["Cluster", "Region", "Zone", "PUE", "Avg intensity", "Emissions (kg)", "vs actual (kg)"],
                      [[o.cluster, o.region or "-", o.zone, f"{o.pue:g}",
                        intensity(o.intensity_g_per_kwh), num(o.emissions_kg),
                        ("+" if o.delta_kg > 0 else "") + num(o.delta_kg)] for o in wi.options])
        b = wi.best
        out += [f"Actual{' (location-based)' if market else ''}: {num(wi.actual_kg)} kg. Best: "
                f"{cell(b.cluster)} ({cell(b.zone)}), "
                f"{num(b.emissions_kg)} kg: a saving of {num(wi.saving_kg)} kg ({pct(wi.saving_pct)}).", ""]
    out += [f"({cell(wi.note)}.)", ""]
    if r.time_shift is not None:
        out += _time_shift(r.time_shift, market)
    if r.uncertainty is not None:
        out += uncertainty_lines(r.uncertainty)

    if r.fleet is not None:
        out += _fleet(r.fleet, market)
    out += ["## Sources", "",
            f"- Equivalences: {cell(r.equivalences.source)}.",
            f"- Embodied emissions: {cell(r.method.embodied.source)}.", ""]
    return "\n".join(out)


def _time_shift(t: TimeShift, market: bool = False) -> list[str]:
    out = ["## What if it had started later", ""]
    if not t.phases:
        return out + ["No measured hours to move.", ""]

    def later(o: TimeShiftOption) -> str:
        return f"+{o.best_shift_hours} h" if o.best_shift_hours else "as it ran"

    actual = "Actual, location-based (kg)" if market else "Actual (kg)"
    out += table(["Phase", "Energy (kWh)", actual, "Cleanest start", "Then (kg)", "Saving (kg)", "Saving",
                   f"Later starts with measured intensity (of {t.slack_hours})"],
                  [[o.phase, num(o.energy_kwh), num(o.actual_kg), later(o), num(o.best_kg), num(o.saving_kg),
                    pct(o.saving_pct), o.shifts_measured] for o in t.phases])
    out += [f"Each phase at its cleanest start within {t.slack_hours} h: a saving of {num(t.saving_kg)} kg "
            f"({pct(t.saving_pct)}).", ""]
    if t.jobs:
        out += ["Top jobs:", ""]
        out += table(["Cluster", "Job", "Project", "Phase", actual, "Cleanest start", "Then (kg)",
                       "Saving (kg)", "Saving"],
                      [[o.cluster, o.job_id, o.project, o.phase, num(o.actual_kg), later(o), num(o.best_kg),
                        num(o.saving_kg), pct(o.saving_pct)] for o in t.jobs])
    return out + [f"({cell(t.note)}.)", ""]


def _held_idle(h: HeldIdle, market: bool = False) -> list[str]:
    out = ["## Held but idle GPUs", "", held_idle_line(h, market), ""]
    if h.top_jobs:
        out += table(["Cluster", "Job", "Project", "Phase", "User", "GPUs", "Held-idle GPU-hours", "Energy (kWh)",
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
    out += table(["Project", "GPU energy (kWh)", "CPU energy (kWh)", "GPU-hours", "CPU core-hours", *emitted,
                   "Previous, market-based (kg)" if market else "Previous (kg)", "Change"],
                  [[p.project, num(p.energy_kwh), num(p.cpu_energy_kwh), num(p.gpu_hours), num(p.cpu_hours),
                    *kg(p), num(p.previous_emissions_kg), signed_pct(p.change_pct)] for p in f.projects])
    out += ["## Projects by phase", ""]
    out += table(["Project", "Phase", "GPU energy (kWh)", "CPU energy (kWh)", "GPU-hours", "CPU core-hours",
                   *emitted],
                  [[p.project, ph.phase, num(ph.energy_kwh), num(ph.cpu_energy_kwh), num(ph.gpu_hours),
                    num(ph.cpu_hours), *kg(ph)] for p in f.projects for ph in p.phases])
    out += ["## Clusters", ""]
    out += table(["Cluster", "Provider", "Region", "Zone", "PUE", "GPUs", "GPU energy (kWh)", "Idle share",
                   "CPU sockets", "CPU energy (kWh)", "Host idle share", "Avg intensity",
                   "Emissions incl. PUE, location-based (kg)" if market else "Emissions incl. PUE (kg)"],
                  [[c.cluster, c.provider, c.region or "-", c.zone or "-", f"{c.pue:g}", c.gpus,
                    num(c.energy_kwh), pct(c.idle_share), "-" if c.cpu_sockets is None else c.cpu_sockets,
                    num(c.cpu_energy_kwh), pct(c.cpu_idle_share), intensity(c.intensity_g_per_kwh),
                    num(c.emissions_kg)] for c in f.clusters])
    if any(c.node_energy_kwh is not None for c in f.clusters):
        out += ["Node residual (BMC node energy less GPU boards and RAPL) by cluster:", ""]
        out += table(["Cluster", "Node residual (kWh)", "Jobs (kWh)", "Node idle (kWh)", "Node idle share"],
                      [[c.cluster, num(c.node_energy_kwh), num(c.node_job_energy_kwh), num(c.node_idle_energy_kwh),
                        pct(c.node_idle_share)] for c in f.clusters if c.node_energy_kwh is not None])
    out += ["## Top jobs by emissions", ""]
    out += table(["Cluster", "Job", "Project", "Phase", "User", "GPU-hours", "CPU core-hours", "GPU energy (kWh)",
                   "CPU energy (kWh)", *emitted],
                  [[j.cluster, j.job_id, j.project, j.phase, j.user or "-", num(j.gpu_hours), num(j.cpu_hours),
                    num(j.energy_kwh), num(j.cpu_energy_kwh), *kg(j)] for j in f.top_jobs])
    prev, ch = f.previous, f.change
    if prev and ch:
        out += [f"Previous period ({cell(prev.start)} .. {cell(prev.end)}): {num(prev.energy_kwh)} kWh of "
                "GPU energy, "
                f"{num(prev.emissions_kg)} kg{market_note(prev.location_kg)}; change: GPU energy "
                f"{signed_pct(ch.energy_pct)}, emissions "
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
