"""The page's sections, from the header to the what-if comparison, as HTML fragments of the report dict."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .charts import chart_phases
from .common import CO2, DASH, G_KWH, LAYER_NAMES, _e, _get, _included_layers, _list, _num, _qty, _when, fmt

CPU_ENERGY_QUALITY = (("counter", "RAPL energy counter"),
                      ("counter_across_gap", "RAPL counter across a telemetry gap"),
                      ("estimated", "estimated (watts per core \u00d7 core-hours, no telemetry)"))
ENERGY_QUALITY = (("counter", "hardware energy counter"),
                  ("counter_across_gap", "energy counter across a telemetry gap"),
                  ("power_integrated", "integrated power samples"),
                  ("estimated", "estimated (TDP \u00d7 GPU-hours, no telemetry)"))
INTENSITY_QUALITY = (("hourly", "hourly grid intensity"),
                     ("nearest_hour", "nearest stored hour"),
                     ("monthly_mean", "zone's monthly mean (fallback)"),
                     ("annual_default", "zone's annual default (fallback)"),
                     ("world_default", "world average (fallback)"),
                     ("declared", "declared in manual phases (estimates)"))


def _table(head: Sequence[tuple[str, bool]], rows: Iterable[str], cls: str = "", foot: str = "") -> str:
    """head: (label html, numeric?) per column; rows: ready <tr> html."""
    th = "".join(f'<th class="n">{h}</th>' if n else f"<th>{h}</th>" for h, n in head)
    c = f' class="{cls}"' if cls else ""
    f = f"<tfoot>{foot}</tfoot>" if foot else ""
    return f"<table{c}><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody>{f}</table>"


def _tr(cells: Sequence[tuple[str, bool]], cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f"<tr{c}>" + "".join(f'<td class="n">{v}</td>' if n else f"<td>{v}</td>" for v, n in cells) + "</tr>"


def _header(report: Mapping[str, Any]) -> str:
    w = report.get("window") if isinstance(report.get("window"), Mapping) else {}
    assert isinstance(w, Mapping)
    label = f" ({_e(w.get('label'))})" if w.get("label") else ""
    kind = "Fleet report" if report.get("kind") == "fleet" else "Project report"
    proj = f" \u00b7 project <b>{_e(report.get('project'))}</b>" if report.get("project") else ""
    title = _e(report.get("title") or "Carbon report")
    return (f'<header><p class="kind">wattprint \u00b7 {kind}{proj}</p><h1>{title}</h1>'
            f'<p class="meta">Window: {_when(w.get("start"))} \u2192 {_when(w.get("end"))}{label}, '
            f'{_qty(w.get("hours"), "h")} \u00b7 generated {_when(report.get("generated_at"))}</p></header>')


def _banner(report: Mapping[str, Any]) -> str:
    dq = report.get("data_quality")
    warnings = dq.get("warnings") if isinstance(dq, Mapping) else None
    if not isinstance(warnings, list) or not warnings:
        return ""
    poor = isinstance(dq, Mapping) and dq.get("poor") is True
    head = "Data quality is poor: read these before using the numbers" if poor else "Data-quality warnings"
    items = "".join(f"<li>{_e(x)}</li>" for x in warnings)
    cls = "banner poor" if poor else "banner"
    return f'<section class="{cls}" id="data-quality-warnings" role="alert"><h2>{head}</h2><ul>{items}</ul></section>'


def _layer_title(report: Mapping[str, Any], layer: str) -> str:
    for row in _list(report.get("layers")):
        if row.get("layer") == layer and row.get("title"):
            return str(row["title"])
    return LAYER_NAMES.get(layer, layer)


def _headline(report: Mapping[str, Any]) -> str:
    total = report.get("total") if isinstance(report.get("total"), Mapping) else {}
    assert isinstance(total, Mapping)
    included = _included_layers(report)
    excluded = [str(r.get("layer")) for r in _list(report.get("layers")) if r.get("included") is not True]
    inc = ", ".join(_e(_layer_title(report, lay)) for lay in included) or "none"
    exc = ", ".join(_e(_layer_title(report, lay)) for lay in excluded)
    exc_html = f"<br>Not included (shown for reference): {exc}." if exc else ""
    statement = _get(report, "method", "statement")
    facility = ""
    if _num(total.get("facility_energy_kwh")) is not None and total.get("facility_energy_kwh") != total.get(
            "energy_kwh"):
        facility = f' ({_qty(total.get("facility_energy_kwh"), "kWh")} with the included layers)'
    cpu = cpu_hours = ""
    if _num(total.get("cpu_energy_kwh")):
        cpu = f', {_qty(total.get("cpu_energy_kwh"), "kWh")} of CPU energy'
        cpu_hours = f' \u00b7 {_qty(total.get("cpu_hours"), "CPU core-hours")}'
    change = ""
    if report.get("kind") == "fleet" and isinstance(report.get("change"), Mapping):
        prev = report.get("previous") if isinstance(report.get("previous"), Mapping) else {}
        assert isinstance(prev, Mapping)
        plabel = f" {_e(prev.get('label'))}" if prev.get("label") else ""
        change = (f'<p class="change">Change against the previous period{plabel} ({_when(prev.get("start"))} '
                  f'\u2192 {_when(prev.get("end"))}: {_qty(prev.get("emissions_kg"), "kg " + CO2)}, '
                  f'{_qty(prev.get("energy_kwh"), "kWh")}): emissions '
                  f'<b>{_qty(_get(report, "change", "emissions_pct"), "%", "share", signed=True)}</b>, energy '
                  f'{_qty(_get(report, "change", "energy_pct"), "%", "share", signed=True)}</p>')
    return (f'<section class="headline" id="headline"><h2>Total emissions</h2>'
            f'<p class="big"><span class="num">{fmt(total.get("emissions_kg"))}</span> kg {CO2}</p>'
            f'<p class="sub">{_qty(total.get("energy_kwh"), "kWh")} of GPU energy{cpu}{facility} \u00b7 '
            f'{_qty(total.get("gpu_hours"), "GPU-hours")}{cpu_hours} \u00b7 '
            f'{_qty(total.get("intensity_g_per_kwh"), G_KWH, "intensity")} energy-weighted</p>'
            f'<p class="layers-inc">Includes: {inc}.{exc_html}</p>'
            + (f'<p class="statement">{_e(statement)}</p>' if statement else "") + change + "</section>")


def _phase_block(phase: Mapping[str, Any]) -> str:
    """One phase in the words of the IDEFICS model card's "Environmental Impact" section (as the Markdown)."""
    title = phase.get("title") or phase.get("phase") or "?"
    label = str(phase.get("label") or "")
    estimated = bool(label) and label != "measured"
    badge = f'<span class="badge {"estimated" if estimated else "measured"}">{_e(label)}</span>' if label else ""
    hw = phase.get("hardware_text")
    if not hw:
        hw = ", ".join(f"{_get(h, 'gpus') or '?'} {_get(h, 'model') or '?'}" for h in _list(phase.get("hardware")))
    clusters = _list(phase.get("clusters"))
    provider = phase.get("provider_text") or ", ".join(
        f"{c.get('provider') or '?'} ({c.get('cluster') or '?'})" for c in clusters)
    region = _e(phase.get("region_text")) or _e(", ".join(
        f"{c.get('region') or c.get('cluster') or '?'} ({c.get('zone') or 'zone unknown'}, "
        f"{fmt(c.get('intensity_g_per_kwh'), 'intensity')} gCO2eq/kWh)" for c in clusters)) or DASH
    if len(clusters) > 1 or not phase.get("region_text"):
        region += f"; energy-weighted {_qty(phase.get('intensity_g_per_kwh'), G_KWH, 'intensity')}"
    jobs = _num(phase.get("jobs"))
    jobs_text = f", {fmt(jobs, 'int')} job{'s' if jobs != 1 else ''}" if jobs else ""
    cpu_hours = f", {_qty(phase.get('cpu_hours'), 'CPU core-hours')}" if _num(phase.get("cpu_hours")) else ""
    if _num(phase.get("wall_clock_hours")) is not None:
        used = (f"{_qty(phase.get('wall_clock_hours'), 'hours')} wall-clock "
                f"({_qty(phase.get('gpu_hours'), 'GPU-hours')}{cpu_hours}{jobs_text})")
    else:
        used = _qty(phase.get("gpu_hours"), "GPU-hours") + cpu_hours + jobs_text
    energy = f"{_qty(phase.get('energy_kwh'), 'kWh')} of GPU energy"
    if _num(phase.get("cpu_energy_kwh")):
        energy += f", {_qty(phase.get('cpu_energy_kwh'), 'kWh')} of CPU energy"
        if _num(phase.get("cpu_package_kwh")) or _num(phase.get("cpu_dram_kwh")):
            energy += (f" (package {_qty(phase.get('cpu_package_kwh'), 'kWh')}, "
                       f"DRAM {_qty(phase.get('cpu_dram_kwh'), 'kWh')})")
    how = "estimated from TDP" if estimated else "measured"
    rows = [("Hardware Type", _e(hw) or DASH),
            ("Hours used", used),
            ("Cloud Provider", _e(provider) or DASH),
            ("Compute Region", region),
            ("Energy", f"{energy} ({how})"),
            ("Carbon Emitted", f"<b>{_qty(phase.get('emissions_kg'), 'kg ' + CO2)}</b>"
                               + (f" \u2014 {_e(label)}" if estimated else ""))]
    items = "".join(f"<li><b>{k}:</b> {v}</li>" for k, v in rows)
    sources = [x for x in phase.get("sources") or [] if isinstance(x, str)] if isinstance(
        phase.get("sources"), list) else []
    if sources:
        items += f'<li class="source"><b>Source:</b> {", ".join(_e(x) for x in sources)}</li>'
    unknown = [str(c.get("cluster")) for c in clusters if c.get("pue_known") is False]
    if unknown:
        items += f'<li><b>PUE:</b> unknown for {_e(", ".join(unknown))} (1.0 used)</li>'
    cls = "phase estimated" if estimated else "phase"
    return f'<article class="{cls}"><h3><i>{_e(title)}</i> {badge}</h3><ul>{items}</ul></article>'


def _phases(report: Mapping[str, Any]) -> str:
    phases = _list(report.get("phases"))
    body = f'<div class="phases">{"".join(_phase_block(p) for p in phases)}</div>' if phases else ""
    return (f'<section id="phases"><h2>Environmental impact by phase</h2>'
            f'{body}{chart_phases(report)}</section>')


def _equivalences(report: Mapping[str, Any]) -> str:
    eq = report.get("equivalences")
    total = _get(report, "total", "emissions_kg")
    if not isinstance(eq, Mapping):
        return ""
    source, edition = str(eq.get("source") or ""), str(eq.get("edition") or "")
    src = _e(source if edition in source else f"{source} ({edition})".strip(" ()"))
    return (f'<section id="equivalences"><h2>Equivalences</h2><p>The total of '
            f'<b>{_qty(total, "kg " + CO2)}</b> is roughly equal to <b>{_qty(eq.get("miles_driven"), "miles")}</b> '
            f'driven by an average gasoline-powered car, or <b>{_qty(eq.get("homes_energy_years"), "homes")}</b>\u2019 '
            f'energy use for one year, according to the US EPA '
            f'({_qty(eq.get("kg_per_mile"), "kg per mile", decimals=3)}, '
            f'{_qty(eq.get("kg_per_home_year"), "kg per home-year", decimals=0)}).'
            f'</p><p class="source">Source: {src or DASH}</p></section>')


def _layers_table(report: Mapping[str, Any]) -> str:
    rows = _list(report.get("layers"))
    if not rows:
        return ""
    inc_e = inc_k = all_k = 0.0
    all_e = 0.0
    body = []
    for r in rows:
        e, k = _num(r.get("energy_kwh")), _num(r.get("emissions_kg"))
        included = r.get("included") is True
        all_k += k or 0.0
        all_e += e or 0.0
        if included:
            inc_k += k or 0.0
            inc_e += e or 0.0
        body.append(_tr([(f"<b>{_e(r.get('title') or r.get('layer'))}</b>", False), (_e(r.get("method")), False),
                         (fmt(e), True), (fmt(k), True), ("yes" if included else "no", False)],
                        "included" if included else "excluded"))
    foot = (_tr([("<b>Total included (headline)</b>", False), ("", False), (f"<b>{fmt(inc_e)}</b>", True),
                 (f"<b>{fmt(inc_k)}</b>", True), ("", False)], "sum")
            + _tr([("All layers", False), ("", False), (fmt(all_e), True), (fmt(all_k), True), ("", False)], "sum"))
    emb = _get(report, "method", "embodied")
    emb_note = ""
    if isinstance(emb, Mapping):
        years = emb.get("lifetime_years")
        ykind = "int" if (_num(years) or 0.5).is_integer() else "qty"
        default = (f'{_qty(emb.get("default_kgco2eq_per_gpu"), "kg " + CO2)} per GPU by default, '
                   if _num(emb.get("default_kgco2eq_per_gpu")) is not None else "")
        emb_note = (f'<p class="source">Embodied: {default}{_qty(years, "years", ykind)} lifetime, '
                    f'{_qty(emb.get("utilisation"), "%", "share")} utilisation; {_e(emb.get("source"))}.</p>')
    rates = _list(_get(report, "method", "embodied", "rates"))
    if rates:
        emb_note += _table([("Cluster", False), ("GPU model", False), (f"kg {CO2} per GPU", True),
                            ("Lifetime (years)", True), ("Utilisation", True), (f"kg {CO2} per GPU-hour", True)],
                           (_tr([(_e(x.get("cluster")), False), (_e(x.get("model")), False),
                                 (fmt(x.get("kgco2eq_per_gpu")), True), (fmt(x.get("lifetime_years")), True),
                                 (_qty(x.get("utilisation"), "%", "share"), True),
                                 (fmt(x.get("kg_per_gpu_hour"), decimals=4), True)]) for x in rates), "compact")
    idle = _get(report, "method", "idle_policy")
    idle_note = f'<p class="source">Idle GPU and host energy policy: {_e(idle)}.</p>' if idle else ""
    return ('<section id="layers"><h2>Accounting layers</h2>'
            + _table([("Layer", False), ("Method", False), ("Energy (kWh)", True), (f"Emissions (kg {CO2})", True),
                      ("In total", False)], body, "layers", foot)
            + emb_note + idle_note + "</section>")


def _share_rows(shares: Any, known: Sequence[tuple[str, str]]) -> list[str]:
    if not isinstance(shares, Mapping):
        return []
    names = dict(known)
    keys = [k for k, _ in known if k in shares] + [k for k in shares if k not in names]
    return [_tr([(_e(names.get(k, k)), False), (_qty(shares.get(k), "%", "share"), True)],
                "zero" if not _num(shares.get(k)) else "") for k in keys]


def _counters_row(c: Any) -> str:
    """The GPU counter check (data_quality.gpu_counters) as one row: priced against counted, and the differences."""
    if not isinstance(c, Mapping):
        return ""
    differ = _num(c.get("difference_gpu_hours")) or 0
    if not _num(c.get("gpu_hours")):
        return _tr([("GPU energy counters", False), ("none ingested for these GPUs: nothing to check", True)])
    text = (f"{fmt(c.get('gpu_hours'), 'int')} GPU-hours: {_qty(c.get('priced_kwh'), 'kWh')} priced, counters "
            f"{_qty(c.get('counter_kwh'), 'kWh')}; " + (f"{fmt(differ, 'int')} GPU-hours differ" if differ
                                                          else "no difference beyond rounding"))
    return _tr([("GPU energy counters", False), (text, True)], "poor" if differ else "")


def _data_quality(report: Mapping[str, Any]) -> str:
    dq = report.get("data_quality")
    if not isinstance(dq, Mapping):
        return ""
    energy = _share_rows(dq.get("energy"), ENERGY_QUALITY)
    inten = _share_rows(dq.get("intensity"), INTENSITY_QUALITY)
    gaps = dq.get("gaps") if isinstance(dq.get("gaps"), Mapping) else {}
    assert isinstance(gaps, Mapping)
    restarts = f", {fmt(gaps.get('restarts'), 'int')} ended in a counter restart" if gaps.get("restarts") else ""
    other = [_tr([("Telemetry gaps (per GPU)", False), (f"{_qty(gaps.get('count'), 'gaps', 'int')}, "
                                                         f"{_qty(gaps.get('hours'), 'GPU-hours')}{restarts}", True)]),
             _counters_row(dq.get("gpu_counters")),
             _tr([("Jobs without telemetry", False), (fmt(dq.get("jobs_without_telemetry"), "int"), True)]),
             _tr([("Clusters without a PUE", False),
                  (", ".join(_e(x) for x in dq.get("clusters_without_pue") or []) or "none", True)]),
             _tr([("Overall", False), ("poor" if dq.get("poor") is True else "ok", True)],
                 "poor" if dq.get("poor") is True else "")]
    cpu = _share_rows(dq.get("cpu_energy"), CPU_ENERGY_QUALITY)
    rapl = dq.get("rapl") if isinstance(dq.get("rapl"), Mapping) else None
    nodes = ""
    if isinstance(rapl, Mapping):
        other.insert(3, _tr([("Nodes without readable RAPL", False),
                             (f"{fmt(rapl.get('nodes_without'), 'int')} of {fmt(rapl.get('nodes'), 'int')} "
                              f"({_qty(rapl.get('gpu_energy_share'), '%', 'share')} of the GPU energy)", True)],
                            "poor" if rapl.get("nodes_without") else ""))
        without = _list(rapl.get("without"))
        if without:
            nodes = ('<h3>Nodes without readable RAPL (their jobs\u2019 CPU energy is missing or incomplete)</h3>'
                     + _table([("Cluster", False), ("Node", False), ("Why", False), ("GPU energy share", True)],
                              (_tr([(_e(n.get("cluster")), False), (_e(n.get("hostname")), False),
                                    (_e(n.get("reason")), False),
                                    (_qty(n.get("gpu_energy_share"), "%", "share"), True)]) for n in without),
                              "rapl compact"))
    return ('<section id="data-quality"><h2>Data quality</h2><div class="cols">'
            + _table([("Energy measured by", False), ("Share", True)], energy, "dq")
            + (_table([("CPU energy measured by", False), ("Share", True)], cpu, "dq") if cpu else "")
            + _table([("Intensity priced by", False), ("Share", True)], inten, "dq")
            + _table([("Coverage", False), ("", True)], other, "dq")
            + "</div>" + nodes + "</section>")


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, Mapping) and isinstance(b, Mapping) and all(
        a.get(k) == b.get(k) for k in ("cluster", "region", "zone", "provider"))


def _whatif(report: Mapping[str, Any]) -> str:
    w = report.get("whatif")
    if not isinstance(w, Mapping):
        return ('<section id="whatif"><h2>What if it had run elsewhere?</h2>'
                '<p>No comparison: only one region is configured.</p></section>')
    options = _list(w.get("options"))
    best = w.get("best")
    head = f'<p>Actual: <b>{_qty(w.get("actual_kg"), "kg " + CO2)}</b>.</p>'
    if not options:
        return (f'<section id="whatif"><h2>What if it had run elsewhere?</h2>{head}'
                f'<p>No alternatives: only one region is configured.</p>'
                + (f'<p class="source">{_e(w.get("note"))}</p>' if w.get("note") else "") + "</section>")
    rows = []
    for o in options:
        is_best = _same(o, best)
        mark = ' <span class="badge best">lowest</span>' if is_best else ""
        rows.append(_tr([(f"{_e(o.get('cluster'))}{mark}", False), (_e(o.get("provider")), False),
                         (f"{_e(o.get('region'))} ({_e(o.get('zone'))})", False), (fmt(o.get("pue"), "pue"), True),
                         (fmt(o.get("intensity_g_per_kwh"), "intensity"), True),
                         (fmt(o.get("hourly_share"), "share"), True), (fmt(o.get("emissions_kg")), True),
                         (fmt(o.get("delta_kg"), signed=True), True)], "best" if is_best else ""))
    saving = ""
    if isinstance(best, Mapping):
        saving = (f'<p class="saving">Lowest: <b>{_e(best.get("cluster"))}</b> ({_e(best.get("region"))}, '
                  f'{_e(best.get("zone"))}): {_qty(best.get("emissions_kg"), "kg " + CO2)}, a saving of '
                  f'<b>{_qty(w.get("saving_kg"), "kg")}</b> ({_qty(w.get("saving_pct"), "%", "share")}).</p>')
    note = f'<p class="source">{_e(w.get("note"))}</p>' if w.get("note") else ""
    return ('<section id="whatif"><h2>What if it had run elsewhere?</h2>' + head
            + _table([("Cluster", False), ("Provider", False), ("Region (zone)", False), ("PUE", True),
                      ("Intensity (g/kWh)", True), ("Hourly intensity (%)", True), (f"Emissions (kg {CO2})", True),
                      ("vs actual (kg)", True)], rows, "whatif") + saving + note + "</section>")
