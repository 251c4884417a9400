"""The three charts of the page, drawn as inline SVG from the typed report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from ..types import Phase, Report
from .common import CO2, LAYER_NAMES, LAYERS, _e, _included_layers, _num, _parse_time, fmt
from .svg import (
    _day_label,
    _f,
    _figure,
    _legend,
    _no_data,
    _polyline,
    _svg_open,
    _swatch_line,
    _swatch_rect,
    _text,
    _text_width,
    _ticks,
    _time_ticks,
    _truncate,
)

CHART_IDS = ("chart-phases", "chart-daily", "chart-power-intensity")
LAYER_COLOURS = {"gpu": "#2b6cb0", "cpu": "#38a169", "node": "#805ad5", "idle": "#63b3ed", "pue": "#dd6b20",
                 "embodied": "#718096"}
CLUSTER_COLOURS = ("#90cdf4", "#9ae6b4", "#cbd5e0", "#fbd38d", "#b7a8e0", "#feb2b2")
ZONE_COLOURS = ("#c53030", "#1a202c", "#b7791f", "#6b46c1", "#2c7a7b", "#d53f8c")
ENERGY_COLOUR = "#4a90d9"
EMISSIONS_COLOUR = "#c53030"


# --------------------------------------------------------------------------- chart 1: emissions by phase


def _layer_kg(phase: Phase, layer: str) -> float | None:
    """A layer's emissions in a phase; None for a layer an older report lacks (cpu)."""
    figures = phase.layers.layer(layer)
    return None if figures is None else figures.emissions_kg


def chart_phases(report: Report) -> str:
    cid = "chart-phases"
    caption = f"Emissions by phase and accounting layer (kg {CO2})"
    if report.market_based:      # the layers are location-based; the market adjustment has no layer to stack in
        caption = f"Emissions by phase and accounting layer (kg {CO2}, location-based; the headline is Scope 2 " \
                  "market-based)"
    phases = report.phases
    if not phases:
        return _no_data(cid, caption, "No phases in this window.")
    included = _included_layers(report)
    # the node layer is drawn only when it is in the headline: listed beside it, it is a check on the BMC's readings
    present = [lay for lay in LAYERS if (lay != "node" or lay in included)
               and (any(_num(_layer_kg(p, lay)) for p in phases) or lay in included)]
    order = [lay for lay in present if lay in included] + [lay for lay in present if lay not in included]
    values = [[max(0.0, _num(_layer_kg(p, lay)) or 0.0) for lay in order] for p in phases]
    totals = [sum(v) for v in values]
    labels = [p.title or p.phase or "?" for p in phases]

    width = 1100
    label_w = min(300.0, max(90.0, max(_text_width(t) for t in labels) + 12))
    x0, x1 = label_w + 14, width - 110
    legend_items = [(_swatch_rect(LAYER_COLOURS[lay], None if lay in included else f"{cid}-hatch-{lay}"),
                     f"{LAYER_NAMES[lay]} ({'included' if lay in included else 'not included'})") for lay in order]
    legend, top = _legend(legend_items, x0, 16, width - 10)
    top += 6
    bar_h, gap = 26.0, 14.0
    plot_h = len(phases) * (bar_h + gap) + gap
    height = int(top + plot_h + 48)
    ticks, dec = _ticks(max(totals) if totals else 0.0)
    vmax = ticks[-1]

    def sx(v: float) -> float:
        return x0 + (x1 - x0) * v / vmax

    desc = "; ".join(f"{t}: {fmt(p.emissions_kg if p.location_kg is None else p.location_kg)} kg {CO2} included"
                     for t, p in zip(labels, phases, strict=True))
    parts = [_svg_open(cid, width, height, caption, desc), "<defs>"]
    for lay in order:
        if lay not in included:
            c = LAYER_COLOURS[lay]
            parts.append(f'<pattern id="{cid}-hatch-{lay}" width="6" height="6" patternUnits="userSpaceOnUse" '
                         f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
                         f'<line x1="0" y1="0" x2="0" y2="6" stroke="{c}" stroke-width="2.5"/></pattern>')
    parts.append("</defs>")
    parts += legend
    y_axis = top + plot_h
    for t in ticks:
        x = sx(t)
        parts.append(f'<line class="grid" x1="{_f(x)}" y1="{_f(top)}" x2="{_f(x)}" y2="{_f(y_axis)}"/>')
        parts.append(_text(x, y_axis + 16, fmt(t, decimals=dec), "tick", "middle"))
    parts.append(f'<line class="axis" x1="{_f(x0)}" y1="{_f(y_axis)}" x2="{_f(x1)}" y2="{_f(y_axis)}"/>')
    parts.append(f'<line class="axis" x1="{_f(x0)}" y1="{_f(top)}" x2="{_f(x0)}" y2="{_f(y_axis)}"/>')
    parts.append(_text((x0 + x1) / 2, y_axis + 36, f"kg {CO2}", "axis-title", "middle"))
    for i, (phase, vals, label) in enumerate(zip(phases, values, labels, strict=True)):
        y = top + gap + i * (bar_h + gap)
        parts.append(f'<g class="phase-row"><title>{_e(label)}</title>'
                     + _text(x0 - 8, y + bar_h / 2 + 4, _e(_truncate(label, label_w - 8)), "cat", "end") + "</g>")
        acc = 0.0
        for lay, v in zip(order, vals, strict=True):
            if v <= 0:
                continue
            xa, xb = sx(acc), sx(acc + v)
            fill = LAYER_COLOURS[lay] if lay in included else f"url(#{cid}-hatch-{lay})"
            stroke = "" if lay in included else f' stroke="{LAYER_COLOURS[lay]}" stroke-width="1"'
            state = "included" if lay in included else "not included"
            parts.append(f'<rect class="bar layer-{lay}" x="{_f(xa)}" y="{_f(y)}" width="{_f(max(xb - xa, 0.5))}" '
                         f'height="{_f(bar_h)}" fill="{fill}"{stroke}><title>{_e(label)}, {LAYER_NAMES[lay]} '
                         f'({state}): {fmt(v)} kg {CO2}</title></rect>')
            acc += v
        value = f"{fmt(phase.emissions_kg)} kg"
        parts.append(_text(sx(acc) + 6, y + bar_h / 2 + 4, value, "value"))
    if not any(totals):
        parts.append(_text((x0 + x1) / 2, top + plot_h / 2, "all values are zero", "empty", "middle"))
    parts.append("</svg>")
    note = ("Solid: layers included in the total. Hatched: computed but not included. "
            "The number after each bar is the phase's emissions as reported (included layers).")
    return _figure(cid, caption, "".join(parts), note)


# --------------------------------------------------------------------------- chart 2: daily energy and emissions


def chart_daily(report: Report) -> str:
    cid = "chart-daily"
    caption = f"Daily GPU and CPU energy (kWh, bars) and emissions (kg {CO2}, line)"
    days: dict[date, tuple[float, float]] = {}
    for row in report.daily:
        try:
            d = date.fromisoformat(row.date[:10])
        except ValueError:
            continue
        energy = (_num(row.energy_kwh) or 0.0) + (_num(row.cpu_energy_kwh) or 0.0)
        days[d] = (max(0.0, energy), max(0.0, _num(row.emissions_kg) or 0.0))
    if not days:
        return _no_data(cid, caption, "No measured data in this window.")
    first, last = min(days), max(days)
    n = (last - first).days + 1
    width, height = 1100, 340
    x0, x1 = 78.0, width - 78.0
    basis = ", Scope 2 market-based" if report.market_based else ""
    legend, top = _legend([(_swatch_rect(ENERGY_COLOUR), "energy (kWh, left axis)"),
                           (_swatch_line(EMISSIONS_COLOUR), f"emissions (kg {CO2}{basis}, right axis)")], x0, 16, x1)
    top += 8
    y_axis = height - 52.0
    left, ldec = _ticks(max(e for e, _ in days.values()))
    right, rdec = _ticks(max(k for _, k in days.values()), intervals=len(left) - 1)
    band = (x1 - x0) / n

    def ly(v: float) -> float:
        return y_axis - (y_axis - top) * v / left[-1]

    def ry(v: float) -> float:
        return y_axis - (y_axis - top) * v / right[-1]

    total_e = sum(e for e, _ in days.values())
    total_k = sum(k for _, k in days.values())
    desc = (f"{n} day(s) from {first.isoformat()} to {last.isoformat()}: {fmt(total_e)} kWh, "
            f"{fmt(total_k)} kg {CO2} in all")
    parts = [_svg_open(cid, width, height, caption, desc)] + legend
    for lt, rt in zip(left, right, strict=True):
        y = ly(lt)
        parts.append(f'<line class="grid" x1="{_f(x0)}" y1="{_f(y)}" x2="{_f(x1)}" y2="{_f(y)}"/>')
        parts.append(_text(x0 - 6, y + 4, fmt(lt, decimals=ldec), "tick", "end"))
        parts.append(_text(x1 + 6, y + 4, fmt(rt, decimals=rdec), "tick tick-right"))
    parts.append(f'<line class="axis" x1="{_f(x0)}" y1="{_f(y_axis)}" x2="{_f(x1)}" y2="{_f(y_axis)}"/>')
    parts.append(f'<line class="axis" x1="{_f(x0)}" y1="{_f(top)}" x2="{_f(x0)}" y2="{_f(y_axis)}"/>')
    parts.append(f'<line class="axis" x1="{_f(x1)}" y1="{_f(top)}" x2="{_f(x1)}" y2="{_f(y_axis)}"/>')
    mid = (top + y_axis) / 2
    parts.append(_text(18, mid, "energy (kWh)", "axis-title", "middle", f' transform="rotate(-90 18 {_f(mid)})"'))
    xr = width - 14
    parts.append(_text(xr, mid, f"emissions (kg {CO2})", "axis-title", "middle",
                       f' transform="rotate(90 {_f(xr)} {_f(mid)})"'))
    label_every = max(1, math.ceil(52 / band))
    if label_every > 1:  # prefer round steps: 2, 7, 14 ... days
        label_every = next((s for s in (2, 3, 7, 14, 28, 56, 91, 182, 365) if s >= label_every), label_every)
    bar_w = min(64.0, max(1.0, band * 0.72))
    points: list[tuple[float, float] | None] = []
    for i in range(n):
        d = first + timedelta(days=i)
        cx = x0 + band * (i + 0.5)
        if i % label_every == 0:
            parts.append(f'<line class="axis" x1="{_f(cx)}" y1="{_f(y_axis)}" x2="{_f(cx)}" y2="{_f(y_axis + 4)}"/>')
            parts.append(_text(cx, y_axis + 18, _day_label(d), "tick", "middle"))
            if i == 0 or d.month == 1 and d.day <= label_every:
                parts.append(_text(cx, y_axis + 32, str(d.year), "tick sub", "middle"))
        if d not in days:
            points.append(None)
            continue
        e, k = days[d]
        h = y_axis - ly(e)
        if h > 0:
            parts.append(f'<rect class="bar energy" x="{_f(cx - bar_w / 2)}" y="{_f(ly(e))}" width="{_f(bar_w)}" '
                         f'height="{_f(max(h, 0.5))}" fill="{ENERGY_COLOUR}"><title>{d.isoformat()}: '
                         f'{fmt(e)} kWh, {fmt(k)} kg {CO2}</title></rect>')
        points.append((cx, ry(k)))
    parts.append(_polyline(points, EMISSIONS_COLOUR, "line emissions", markers=n <= 62))
    if total_e == 0 and total_k == 0:
        parts.append(_text((x0 + x1) / 2, mid, "all values are zero", "empty", "middle"))
    parts.append("</svg>")
    return _figure(cid, caption, "".join(parts))


# --------------------------------------------------------------------------- chart 3: power vs grid intensity


def chart_power_intensity(report: Report) -> str:
    cid = "chart-power-intensity"
    caption = "Hourly GPU power and grid carbon intensity (gCO\u2082eq/kWh) per zone, UTC"
    power: dict[str, dict[datetime, float]] = {}
    inten_sum: dict[str, dict[datetime, list[float]]] = {}
    for row in report.hourly:
        t = _parse_time(row.hour)
        if t is None:
            continue
        t = t.replace(minute=0, second=0, microsecond=0)
        cluster, zone = row.cluster or "?", row.zone or "?"
        p = _num(row.power_w)
        if p is not None:
            power.setdefault(cluster, {})[t] = power.get(cluster, {}).get(t, 0.0) + max(0.0, p)
        g = _num(row.intensity_g_per_kwh)
        if g is not None:
            inten_sum.setdefault(zone, {}).setdefault(t, []).append(max(0.0, g))
    hours = sorted({t for s in power.values() for t in s} | {t for s in inten_sum.values() for t in s})
    if not hours:
        return _no_data(cid, caption, "No measured data in this window.")
    intensity = {z: {t: sum(v) / len(v) for t, v in s.items()} for z, s in sorted(inten_sum.items())}
    clusters = sorted(power)
    t_start, t_end = hours[0], hours[-1] + timedelta(hours=1)
    span_h = (t_end - t_start).total_seconds() / 3600
    stack_max = max((sum(power[c].get(t, 0.0) for c in clusters) for t in hours), default=0.0)
    kw = stack_max >= 10_000
    punit, pscale = ("kW", 1000.0) if kw else ("W", 1.0)

    width, height = 1100, 360
    x0, x1 = 78.0, width - 78.0
    items = [(_swatch_rect(CLUSTER_COLOURS[i % len(CLUSTER_COLOURS)]), f"GPU power, {c} ({punit}, left)")
             for i, c in enumerate(clusters)]
    items += [(_swatch_line(ZONE_COLOURS[i % len(ZONE_COLOURS)]), f"intensity {z} (g/kWh, right)")
              for i, z in enumerate(intensity)]
    legend, top = _legend(items, x0, 16, x1)
    top += 8
    y_axis = height - 56.0
    left, ldec = _ticks(stack_max / pscale)
    imax = max((v for s in intensity.values() for v in s.values()), default=0.0)
    right, rdec = _ticks(imax, intervals=len(left) - 1)

    def sx(t: datetime) -> float:
        return x0 + (x1 - x0) * (t - t_start).total_seconds() / 3600 / span_h

    def ly(v: float) -> float:
        return y_axis - (y_axis - top) * v / pscale / left[-1]

    def ry(v: float) -> float:
        return y_axis - (y_axis - top) * v / right[-1]

    desc = (f"{len(hours)} hour(s) from {t_start:%Y-%m-%d %H:%M} to {t_end:%Y-%m-%d %H:%M} UTC; "
            f"peak GPU power {fmt(stack_max / pscale)} {punit}; zones {', '.join(intensity) or 'none'}")
    parts = [_svg_open(cid, width, height, caption, desc)] + legend
    for lt, rt in zip(left, right, strict=True):
        y = y_axis - (y_axis - top) * lt / left[-1]
        parts.append(f'<line class="grid" x1="{_f(x0)}" y1="{_f(y)}" x2="{_f(x1)}" y2="{_f(y)}"/>')
        parts.append(_text(x0 - 6, y + 4, fmt(lt, decimals=ldec), "tick", "end"))
        parts.append(_text(x1 + 6, y + 4, fmt(rt, decimals=rdec), "tick tick-right"))
    # stacked step areas, one per cluster, over each run of consecutive hours
    below: dict[datetime, float] = {}
    for i, c in enumerate(clusters):
        colour = CLUSTER_COLOURS[i % len(CLUSTER_COLOURS)]
        series = power[c]
        for run in _runs(sorted(series)):
            tops: list[str] = []
            bottoms: list[str] = []
            for t in run:
                base = below.get(t, 0.0)
                xa, xb = sx(t), sx(t + timedelta(hours=1))
                tops += [f"{_f(xa)},{_f(ly(base + series[t]))}", f"{_f(xb)},{_f(ly(base + series[t]))}"]
                bottoms += [f"{_f(xa)},{_f(ly(base))}", f"{_f(xb)},{_f(ly(base))}"]
            d = "M" + " L".join(tops + bottoms[::-1]) + " Z"
            parts.append(f'<path class="area power" d="{d}" fill="{colour}" stroke="none"><title>GPU power, '
                         f'{_e(c)}, {run[0]:%Y-%m-%d %H:%M} to {run[-1] + timedelta(hours=1):%Y-%m-%d %H:%M} '
                         f'UTC</title></path>')
            for t in run:
                below[t] = below.get(t, 0.0) + series[t]
    for i, (zone, s) in enumerate(intensity.items()):
        colour = ZONE_COLOURS[i % len(ZONE_COLOURS)]
        pts: list[tuple[float, float] | None] = []
        prev: datetime | None = None
        for t in sorted(s):
            if prev is not None and t - prev > timedelta(hours=1):
                pts.append(None)
            pts.append((sx(t + timedelta(minutes=30)), ry(s[t])))
            prev = t
        parts.append(f'<g><title>intensity {_e(zone)} (gCO\u2082eq/kWh)</title>'
                     + _polyline(pts, colour, "line intensity", markers=len(hours) <= 3) + "</g>")
    parts.append(f'<line class="axis" x1="{_f(x0)}" y1="{_f(y_axis)}" x2="{_f(x1)}" y2="{_f(y_axis)}"/>')
    parts.append(f'<line class="axis" x1="{_f(x0)}" y1="{_f(top)}" x2="{_f(x0)}" y2="{_f(y_axis)}"/>')
    parts.append(f'<line class="axis" x1="{_f(x1)}" y1="{_f(top)}" x2="{_f(x1)}" y2="{_f(y_axis)}"/>')
    mid = (top + y_axis) / 2
    parts.append(_text(18, mid, f"GPU power ({punit})", "axis-title", "middle",
                       f' transform="rotate(-90 18 {_f(mid)})"'))
    xr = width - 14
    parts.append(_text(xr, mid, "intensity (gCO\u2082eq/kWh)", "axis-title", "middle",
                       f' transform="rotate(90 {_f(xr)} {_f(mid)})"'))
    parts += _time_ticks(t_start, t_end, sx, y_axis, (x1 - x0) / span_h)
    if stack_max == 0 and imax == 0:
        parts.append(_text((x0 + x1) / 2, mid, "all values are zero", "empty", "middle"))
    parts.append("</svg>")
    note = ("Areas: GPU power of this report's scope, stacked by cluster (hourly mean). "
            "Lines: the grid intensity used for each zone and hour.")
    return _figure(cid, caption, "".join(parts), note)


def _runs(hours: Sequence[datetime]) -> list[list[datetime]]:
    runs: list[list[datetime]] = []
    for t in hours:
        if runs and t - runs[-1][-1] == timedelta(hours=1):
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs
