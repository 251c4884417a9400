"""The page's sections, from the header to the what-if comparison, as HTML fragments of the typed report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..record import Record
from ..types import AmdExporter, EqualShare, GpuCounters, Phase, Report, TimeShiftOption
from ..vocabulary import CPU_ENERGY_QUALITY, ENERGY_QUALITY, INTENSITY_QUALITY, labelled
from .charts import chart_phases
from .common import CO2, DASH, G_KWH, LAYER_NAMES, _e, _included_layers, _num, _qty, _when, fmt, market_note


def _table(head: Sequence[tuple[str, bool]], rows: Iterable[str], cls: str = "", foot: str = "") -> str:
    """head: (label html, numeric?) per column; rows: ready <tr> html."""
    th = "".join(f'<th class="n">{h}</th>' if n else f"<th>{h}</th>" for h, n in head)
    c = f' class="{cls}"' if cls else ""
    f = f"<tfoot>{foot}</tfoot>" if foot else ""
    return f"<table{c}><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody>{f}</table>"


def _tr(cells: Sequence[tuple[str, bool]], cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<tr{c}>" + "".join(f'<td class="n">{v}</td>' if n else f"<td>{v}</td>" for v, n in cells) + "</tr>"


def _header(report: Report) -> str:
    w = report.window
    label = f" ({_e(w.label)})" if w.label else ""
    kind = "Fleet report" if report.kind == "fleet" else "Project report"
    proj = f" \u00b7 project <b>{_e(report.project)}</b>" if report.project else ""
    title = _e(report.title or "Carbon report")
    return (f'<header><p class="kind">wattprint \u00b7 {kind}{proj}</p><h1>{title}</h1>'
            f'<p class="meta">Window: {_when(w.start)} \u2192 {_when(w.end)}{label}, '
            f'{_qty(w.hours, "h")} \u00b7 generated {_when(report.generated_at)}</p></header>')


def _banner(report: Report) -> str:
    dq = report.data_quality
    if not dq.warnings:
        return ""
    head = "Data quality is poor: read these before using the numbers" if dq.poor else "Data-quality warnings"
    items = "".join(f"<li>{_e(x)}</li>" for x in dq.warnings)
    cls = "banner poor" if dq.poor else "banner"
    return f'<section class="{cls}" id="data-quality-warnings" role="alert"><h2>{head}</h2><ul>{items}</ul></section>'


def _layer_title(report: Report, layer: str) -> str:
    for row in report.layers:
        if row.layer == layer and row.title:
            return row.title
    return LAYER_NAMES.get(layer, layer)


def _headline(report: Report) -> str:
    total = report.total
    included = _included_layers(report)
    excluded = [r.layer for r in report.layers if not r.included]
    inc = ", ".join(_e(_layer_title(report, lay)) for lay in included) or "none"
    exc = ", ".join(_e(_layer_title(report, lay)) for lay in excluded)
    exc_html = f"<br>Not included (shown for reference): {exc}." if exc else ""
    statement = report.method.statement
    facility = ""
    if _num(total.facility_energy_kwh) is not None and total.facility_energy_kwh != total.energy_kwh:
        facility = f' ({_qty(total.facility_energy_kwh, "kWh")} with the included layers)'
    cpu = cpu_hours = ""
    if _num(total.cpu_energy_kwh):
        cpu = f', {_qty(total.cpu_energy_kwh, "kWh")} of CPU energy'
        cpu_hours = f' \u00b7 {_qty(total.cpu_hours, "CPU core-hours")}'
    change = ""
    fleet = report.fleet
    if fleet is not None and fleet.change is not None and fleet.previous is not None:
        prev, ch = fleet.previous, fleet.change
        plabel = f" {_e(prev.label)}" if prev.label else ""
        change = (f'<p class="change">Change against the previous period{plabel} ({_when(prev.start)} '
                  f'\u2192 {_when(prev.end)}: {_qty(prev.emissions_kg, "kg " + CO2)}{market_note(prev.location_kg)}, '
                  f'{_qty(prev.energy_kwh, "kWh")}): emissions '
                  f'<b>{_qty(ch.emissions_pct, "%", "share", signed=True)}</b>, energy '
                  f'{_qty(ch.energy_pct, "%", "share", signed=True)}</p>')
    return (f'<section class="headline" id="headline"><h2>Total emissions</h2>'
            f'<p class="big"><span class="num">{fmt(total.emissions_kg)}</span> kg {CO2}</p>'
            + (f'<p class="sub">Scope 2 market-based (see Scope 2); location-based '
               f'{_qty(total.location_kg, "kg " + CO2)}</p>' if total.location_kg is not None else "") +
            f'<p class="sub">{_qty(total.energy_kwh, "kWh")} of GPU energy{cpu}{facility} \u00b7 '
            f'{_qty(total.gpu_hours, "GPU-hours")}{cpu_hours} \u00b7 '
            f'{_qty(total.intensity_g_per_kwh, G_KWH, "intensity")} energy-weighted</p>'
            f'<p class="layers-inc">Includes: {inc}.{exc_html}</p>'
            + (f'<p class="statement">{_e(statement)}</p>' if statement else "") + change + "</section>")


def _phase_block(phase: Phase) -> str:
    """One phase in the words of the IDEFICS model card's "Environmental Impact" section (as the Markdown)."""
    title = phase.title or phase.phase or "?"
    label = phase.label
    estimated = bool(label) and label != "measured"
    badge = f'<span class="badge {"estimated" if estimated else "measured"}">{_e(label)}</span>' if label else ""
    hw = phase.hardware_text
    if not hw:
        hw = ", ".join(f"{h.gpus or '?'} {h.model or '?'}" for h in phase.hardware)
    clusters = phase.clusters
    provider = phase.provider_text or ", ".join(f"{c.provider or '?'} ({c.cluster or '?'})" for c in clusters)
    region = _e(phase.region_text) or _e(", ".join(
        f"{c.region or c.cluster or '?'} ({c.zone or 'zone unknown'}, "
        f"{fmt(c.intensity_g_per_kwh, 'intensity')} gCO2eq/kWh)" for c in clusters)) or DASH
    if len(clusters) > 1 or not phase.region_text:
        region += f"; energy-weighted {_qty(phase.intensity_g_per_kwh, G_KWH, 'intensity')}"
    jobs = phase.jobs
    jobs_text = f", {fmt(jobs, 'int')} job{'s' if jobs != 1 else ''}" if jobs else ""
    cpu_hours = f", {_qty(phase.cpu_hours, 'CPU core-hours')}" if _num(phase.cpu_hours) else ""
    if _num(phase.wall_clock_hours) is not None:
        used = (f"{_qty(phase.wall_clock_hours, 'hours')} wall-clock "
                f"({_qty(phase.gpu_hours, 'GPU-hours')}{cpu_hours}{jobs_text})")
    else:
        used = _qty(phase.gpu_hours, "GPU-hours") + cpu_hours + jobs_text
    energy = f"{_qty(phase.energy_kwh, 'kWh')} of GPU energy"
    if _num(phase.cpu_energy_kwh):
        energy += f", {_qty(phase.cpu_energy_kwh, 'kWh')} of CPU energy"
        if _num(phase.cpu_package_kwh) or _num(phase.cpu_dram_kwh):
            energy += (f" (package {_qty(phase.cpu_package_kwh, 'kWh')}, "
                       f"DRAM {_qty(phase.cpu_dram_kwh, 'kWh')})")
    how = "estimated from TDP" if estimated else "measured"
    rows = [("Hardware Type", _e(hw) or DASH),
            ("Hours used", used),
            ("Cloud Provider", _e(provider) or DASH),
            ("Compute Region", region),
            ("Energy", f"{energy} ({how})"),
            ("Carbon Emitted", f"<b>{_qty(phase.emissions_kg, 'kg ' + CO2)}</b>"
                               + (f" \u2014 {_e(label)}" if estimated else "") + market_note(phase.location_kg))]
    items = "".join(f"<li><b>{k}:</b> {v}</li>" for k, v in rows)
    if phase.sources:
        items += f'<li class="source"><b>Source:</b> {", ".join(_e(x) for x in phase.sources)}</li>'
    unknown = [c.cluster for c in clusters if not c.pue_known]
    if unknown:
        items += f'<li><b>PUE:</b> unknown for {_e(", ".join(unknown))} (1.0 used)</li>'
    cls = "phase estimated" if estimated else "phase"
    return f'<article class="{cls}"><h3><i>{_e(title)}</i> {badge}</h3><ul>{items}</ul></article>'


def _phases(report: Report) -> str:
    phases = report.phases
    body = f'<div class="phases">{"".join(_phase_block(p) for p in phases)}</div>' if phases else ""
    return (f'<section id="phases"><h2>Environmental impact by phase</h2>'
            f'{body}{chart_phases(report)}</section>')


def _equivalences(report: Report) -> str:
    eq = report.equivalences
    total = report.total.emissions_kg
    source, edition = eq.source, eq.edition
    src = _e(source if edition in source else f"{source} ({edition})".strip(" ()"))
    return (f'<section id="equivalences"><h2>Equivalences</h2><p>The total of '
            f'<b>{_qty(total, "kg " + CO2)}</b> is roughly equal to <b>{_qty(eq.miles_driven, "miles")}</b> '
            f'driven by an average gasoline-powered car, or <b>{_qty(eq.homes_energy_years, "homes")}</b>\u2019 '
            f'energy use for one year, according to the US EPA '
            f'({_qty(eq.kg_per_mile, "kg per mile", decimals=3)}, '
            f'{_qty(eq.kg_per_home_year, "kg per home-year", decimals=0)}).'
            f'</p><p class="source">Source: {src or DASH}</p></section>')


def _layers_table(report: Report) -> str:
    rows = report.layers
    if not rows:
        return ""
    inc_e = inc_k = all_k = 0.0
    all_e = 0.0
    body = []
    for r in rows:
        e, k = _num(r.energy_kwh), _num(r.emissions_kg)
        all_k += k or 0.0
        all_e += e or 0.0
        if r.included:
            inc_k += k or 0.0
            inc_e += e or 0.0
        body.append(_tr([(f"<b>{_e(r.title or r.layer)}</b>", False), (_e(r.method), False),
                         (fmt(e), True), (fmt(k), True), ("yes" if r.included else "no", False)],
                        "included" if r.included else "excluded"))
    foot = (_tr([("<b>Total included (headline)</b>", False), ("", False), (f"<b>{fmt(inc_e)}</b>", True),
                 (f"<b>{fmt(inc_k)}</b>", True), ("", False)], "sum")
            + _tr([("All layers", False), ("", False), (fmt(all_e), True), (fmt(all_k), True), ("", False)], "sum"))
    total = report.total
    if total.location_kg is not None:     # the layers are location-based: the market adjustment is a line of its own
        foot = (_tr([("Total included, location-based", False), ("", False), (fmt(inc_e), True), (fmt(inc_k), True),
                     ("", False)], "sum")
                + _tr([("Scope 2 market-based adjustment", False),
                       ("contractual instruments and residual mixes (see Scope 2)", False), ("", True),
                       (fmt(total.emissions_kg - total.location_kg, signed=True), True), ("yes", False)], "included")
                + _tr([("<b>Total included (headline, Scope 2 market-based)</b>", False), ("", False),
                       (f"<b>{fmt(inc_e)}</b>", True), (f"<b>{fmt(total.emissions_kg)}</b>", True), ("", False)],
                      "sum")
                + _tr([("All layers, location-based", False), ("", False), (fmt(all_e), True), (fmt(all_k), True),
                       ("", False)], "sum"))
    emb = report.method.embodied
    years = emb.lifetime_years
    ykind = "int" if (_num(years) or 0.5).is_integer() else "qty"
    default = (f'{_qty(emb.default_kgco2eq_per_gpu, "kg " + CO2)} per GPU by default, '
               if _num(emb.default_kgco2eq_per_gpu) is not None else "")
    emb_note = (f'<p class="source">Embodied: {default}{_qty(years, "years", ykind)} lifetime, '
                f'{_qty(emb.utilisation, "%", "share")} utilisation; {_e(emb.source)}.</p>')
    if emb.rates:
        emb_note += _table([("Cluster", False), ("GPU model", False), (f"kg {CO2} per GPU", True),
                            ("Lifetime (years)", True), ("Utilisation", True), (f"kg {CO2} per GPU-hour", True)],
                           (_tr([(_e(x.cluster), False), (_e(x.model), False),
                                 (fmt(x.kgco2eq_per_gpu), True), (fmt(x.lifetime_years), True),
                                 (_qty(x.utilisation, "%", "share"), True),
                                 (fmt(x.kg_per_gpu_hour, decimals=4), True)]) for x in emb.rates), "compact")
    idle = report.method.idle_policy
    idle_note = f'<p class="source">Idle GPU and host energy policy: {_e(idle)}.</p>' if idle else ""
    return ('<section id="layers"><h2>Accounting layers</h2>'
            + _table([("Layer", False), ("Method", False), ("Energy (kWh)", True), (f"Emissions (kg {CO2})", True),
                      ("In total", False)], body, "layers", foot)
            + emb_note + idle_note + "</section>")


def _share_rows(shares: Record | None, known: tuple[tuple[str, str], ...]) -> list[str]:
    """One row per share of a data-quality breakdown (EnergyShares, CpuEnergyShares, IntensityShares)."""
    if shares is None:
        return []
    return [_tr([(_e(label), False), (_qty(v, "%", "share"), True)], "zero" if not _num(v) else "")
            for label, v in labelled(shares.to_dict(), known)]


def _counters_row(c: GpuCounters) -> str:
    """The GPU counter check (data_quality.gpu_counters) as one row: priced against counted, and the differences."""
    differ = c.difference_gpu_hours
    if not c.gpu_hours:
        return _tr([("GPU energy counters", False), ("none ingested for these GPUs: nothing to check", True)])
    text = (f"{fmt(c.gpu_hours, 'int')} GPU-hours: {_qty(c.priced_kwh, 'kWh')} priced, counters "
            f"{_qty(c.counter_kwh, 'kWh')}; " + (f"{fmt(differ, 'int')} GPU-hours differ" if differ
                                                 else "no difference beyond rounding"))
    return _tr([("GPU energy counters", False), (text, True)], "poor" if differ else "")


def _equal_share_row(e: EqualShare) -> str:
    """The equal-share fallback (data_quality.equal_share) as one row."""
    return _tr([("Equal-share fallback (shared GPU, no per-process utilisation)", False),
                (f"{_qty(e.gpu_hours, 'GPU-hours')}, {_qty(e.share, '%', 'share')} of "
                 f"{_qty(e.shared_gpu_hours, 'GPU-hours')} on GPUs with more than one job in the hour", True)])


def _amd_partitions_row(a: AmdExporter) -> str:
    """AMD GPUs' secondary partitions (data_quality.amd_exporter) as one row."""
    return _tr([("AMD GPU partitions (lines not priced: the primary partition's carries the GPU)", False),
                (f"{_qty(a.partitions, 'secondary partitions', 'int')} on {_qty(a.partition_nodes, 'nodes', 'int')}",
                 True)])


def _held_idle(report: Report) -> str:
    """Energy of held but idle GPUs (held_idle): the total and the jobs with the most."""
    h = report.held_idle
    if h is None:
        return ""
    jobs = ""
    if h.top_jobs:
        jobs = _table([("Cluster", False), ("Job", False), ("Project", False), ("Phase", False), ("User", False),
                       ("GPUs", True), ("Held-idle GPU-hours", True), ("Energy (kWh)", True),
                       ("Share of its GPU energy (%)", True), (f"Emissions (kg {CO2})", True)],
                      (_tr([(_e(j.cluster), False), (_e(j.job_id), False), (_e(j.project), False),
                            (_e(j.phase), False), (_e(j.user) or DASH, False), (fmt(j.gpus, "int"), True),
                            (fmt(j.gpu_hours), True), (fmt(j.energy_kwh), True),
                            (fmt(j.gpu_energy_share, "share"), True), (fmt(j.emissions_kg), True)])
                       for j in h.top_jobs), "held-idle")
    where = " location-based" if report.market_based else ""
    return ('<section id="held-idle"><h2>Held but idle GPUs</h2>'
            f'<p>Energy of held but idle GPUs: <b>{_qty(h.energy_kwh, "kWh")}</b>, '
            f'<b>{_qty(h.emissions_kg, "kg " + CO2)}</b>{where} ({_qty(h.gpu_energy_share, "%", "share")} of the GPU '
            f'energy), {_qty(h.gpu_hours, "GPU-hours")} held while idle by {_qty(h.jobs, "jobs", "int")}. '
            "It is a part of the GPU energy above, not added to it.</p>" + jobs + "</section>")


def _data_quality(report: Report) -> str:
    dq = report.data_quality
    energy = _share_rows(dq.energy, ENERGY_QUALITY)
    inten = _share_rows(dq.intensity, INTENSITY_QUALITY)
    gaps = dq.gaps
    restarts = f", {fmt(gaps.restarts, 'int')} ended in a counter restart" if gaps.restarts else ""
    other = [_tr([("Telemetry gaps (per GPU)", False), (f"{_qty(gaps.count, 'gaps', 'int')}, "
                                                         f"{_qty(gaps.hours, 'GPU-hours')}{restarts}", True)]),
             _counters_row(dq.gpu_counters),
             _tr([("Jobs without telemetry", False), (fmt(dq.jobs_without_telemetry, "int"), True)]),
             _tr([("Clusters without a PUE", False),
                  (", ".join(_e(x) for x in dq.clusters_without_pue) or "none", True)]),
             _tr([("Overall", False), ("poor" if dq.poor else "ok", True)], "poor" if dq.poor else "")]
    cpu = _share_rows(dq.cpu_energy, CPU_ENERGY_QUALITY)
    rapl = dq.rapl
    nodes = ""
    if rapl is not None:
        other.insert(3, _tr([("Nodes without readable RAPL", False),
                             (f"{fmt(rapl.nodes_without, 'int')} of {fmt(rapl.nodes, 'int')} "
                              f"({_qty(rapl.gpu_energy_share, '%', 'share')} of the GPU energy)", True)],
                            "poor" if rapl.nodes_without else ""))
        if rapl.without:
            nodes = ('<h3>Nodes without readable RAPL (their jobs\u2019 CPU energy is missing or incomplete)</h3>'
                     + _table([("Cluster", False), ("Node", False), ("Why", False), ("GPU energy share", True)],
                              (_tr([(_e(n.cluster), False), (_e(n.hostname), False), (_e(n.reason), False),
                                    (_qty(n.gpu_energy_share, "%", "share"), True)]) for n in rapl.without),
                              "rapl compact"))
    if dq.equal_share is not None:          # before "Overall"
        other.insert(len(other) - 1, _equal_share_row(dq.equal_share))
    if dq.amd_exporter is not None and dq.amd_exporter.partitions:
        other.insert(len(other) - 1, _amd_partitions_row(dq.amd_exporter))
    return ('<section id="data-quality"><h2>Data quality</h2><div class="cols">'
            + _table([("Energy measured by", False), ("Share", True)], energy, "dq")
            + (_table([("CPU energy measured by", False), ("Share", True)], cpu, "dq") if cpu else "")
            + _table([("Intensity priced by", False), ("Share", True)], inten, "dq")
            + _table([("Coverage", False), ("", True)], other, "dq")
            + "</div>" + nodes + "</section>")


def _whatif(report: Report) -> str:
    w = report.whatif
    best = w.best
    where = " (location-based)" if report.market_based else ""
    head = f'<p>Actual{where}: <b>{_qty(w.actual_kg, "kg " + CO2)}</b>.</p>'
    if not w.options:
        return (f'<section id="whatif"><h2>What if it had run elsewhere?</h2>{head}'
                f'<p>No alternatives: only one region is configured.</p>'
                + (f'<p class="source">{_e(w.note)}</p>' if w.note else "") + "</section>")
    rows = []
    for o in w.options:
        is_best = o.same_place(best)
        mark = ' <span class="badge best">lowest</span>' if is_best else ""
        rows.append(_tr([(f"{_e(o.cluster)}{mark}", False), (_e(o.provider), False),
                         (f"{_e(o.region)} ({_e(o.zone)})", False), (fmt(o.pue, "pue"), True),
                         (fmt(o.intensity_g_per_kwh, "intensity"), True),
                         (fmt(o.hourly_share, "share"), True), (fmt(o.emissions_kg), True),
                         (fmt(o.delta_kg, signed=True), True)], "best" if is_best else ""))
    saving = ""
    if best is not None:
        saving = (f'<p class="saving">Lowest: <b>{_e(best.cluster)}</b> ({_e(best.region)}, '
                  f'{_e(best.zone)}): {_qty(best.emissions_kg, "kg " + CO2)}, a saving of '
                  f'<b>{_qty(w.saving_kg, "kg")}</b> ({_qty(w.saving_pct, "%", "share")}).</p>')
    note = f'<p class="source">{_e(w.note)}</p>' if w.note else ""
    return ('<section id="whatif"><h2>What if it had run elsewhere?</h2>' + head
            + _table([("Cluster", False), ("Provider", False), ("Region (zone)", False), ("PUE", True),
                      ("Intensity (g/kWh)", True), ("Hourly intensity (%)", True), (f"Emissions (kg {CO2})", True),
                      ("vs actual (kg)", True)], rows, "whatif") + saving + note + "</section>")


def _time_shift(report: Report) -> str:
    t = report.time_shift
    if t is None:
        return ""
    title = "<h2>What if it had started later?</h2>"
    note = f'<p class="source">{_e(t.note)}</p>' if t.note else ""
    if not t.phases:
        return f'<section id="time-shift">{title}<p>No measured hours to move.</p>{note}</section>'

    def later(o: TimeShiftOption) -> str:
        return f"+{o.best_shift_hours}&nbsp;h" if o.best_shift_hours else "as it ran"

    def cells(o: TimeShiftOption) -> list[tuple[str, bool]]:
        return [(fmt(o.actual_kg), True), (later(o), True), (fmt(o.best_kg), True), (fmt(o.saving_kg), True),
                (fmt(o.saving_pct, "share"), True)]

    money = [("Actual, location-based (kg)" if report.market_based else "Actual (kg)", True),
             ("Cleanest start", True), ("Then (kg)", True), ("Saving (kg)", True),
             ("Saving (%)", True)]
    phases = _table([("Phase", False), ("Energy (kWh)", True), *money,
                     (f"Later starts with measured intensity (of {t.slack_hours})", True)],
                    [_tr([(_e(o.phase), False), (fmt(o.energy_kwh), True), *cells(o),
                          (str(o.shifts_measured), True)]) for o in t.phases], "time-shift")
    saving = (f'<p class="saving">Each phase at its cleanest start within {t.slack_hours}&nbsp;h: a saving of '
              f'<b>{_qty(t.saving_kg, "kg")}</b> ({_qty(t.saving_pct, "%", "share")}).</p>')
    jobs = ""
    if t.jobs:
        jobs = "<h3>Top jobs</h3>" + _table(
            [("Cluster", False), ("Job", False), ("Project", False), ("Phase", False), *money],
            [_tr([(_e(o.cluster), False), (_e(o.job_id), False), (_e(o.project), False), (_e(o.phase), False),
                  *cells(o)]) for o in t.jobs], "time-shift-jobs")
    return f'<section id="time-shift">{title}{phases}{saving}{jobs}{note}</section>'
