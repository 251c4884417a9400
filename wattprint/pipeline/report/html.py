"""The report as one self-contained HTML page: inline CSS, charts as inline SVG drawn here, no script, no URL.

`render(report)` takes the report dict (schema_version 1, the same dict the JSON report holds) and returns a
complete HTML5 page that can be mailed, archived or opened offline: nothing is fetched when it is viewed. Every
string that comes from the report is escaped (project, cluster and user names come from users).

Every number on the page goes through `fmt`, so a figure printed here is the report's value rounded one way,
everywhere, and the same way as the Markdown report (quantities go through `pipeline.report.fmt.num`); the JSON
and CSV carry the unrounded values, and tests compare `fmt(value)` with the page:

    kg, kWh, hours, miles   `num`: thousands separators; none from 100, 1 decimal from 0.1, 2 significant digits below
    share                   a 0..1 fraction (the report's shares and its *_pct fields) in percent, 1 decimal
                            (as `fmt.pct` / `fmt.signed_pct`, without the " %")
    intensity, counts       0 decimals;  PUE 2 decimals
    missing, NaN, infinite  "\u2014"
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .fmt import num
from .names import clean

__all__ = ["render", "fmt", "CHART_IDS"]

CHART_IDS = ("chart-phases", "chart-daily", "chart-power-intensity")
LAYERS = ("gpu", "cpu", "idle", "pue", "embodied")
LAYER_NAMES = {"gpu": "GPU", "cpu": "CPU (host)", "idle": "idle GPUs and hosts", "pue": "facility (PUE)",
               "embodied": "embodied"}
LAYER_COLOURS = {"gpu": "#2b6cb0", "cpu": "#38a169", "idle": "#63b3ed", "pue": "#dd6b20", "embodied": "#718096"}
CLUSTER_COLOURS = ("#90cdf4", "#9ae6b4", "#cbd5e0", "#fbd38d", "#b7a8e0", "#feb2b2")
ZONE_COLOURS = ("#c53030", "#1a202c", "#b7791f", "#6b46c1", "#2c7a7b", "#d53f8c")
ENERGY_COLOUR = "#4a90d9"
EMISSIONS_COLOUR = "#c53030"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DASH = "\u2014"
CO2 = "CO\u2082eq"
G_KWH = "gCO\u2082eq/kWh"

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


# --------------------------------------------------------------------------- numbers and text


def _num(value: Any) -> float | None:
    """A finite float, or None (missing, not a number, NaN, infinite, bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def fmt(value: Any, kind: str = "qty", *, signed: bool = False, decimals: int | None = None) -> str:
    """The one number formatter of the page (see the module docstring); returns the number without its unit.

    kind: "qty" (kg, kWh, hours, miles, homes: `pipeline.report.fmt.num`, as in the Markdown report), "share"
    (a 0..1 fraction shown in percent, like `fmt.pct` without the " %"), "int" / "intensity" (0 decimals), "pue"
    (2 decimals). `decimals` gives a fixed number of decimals instead (axis tick labels). `signed` puts "+"
    before positive values. Thousands are separated with ","; missing, NaN and infinite values are "\u2014".
    """
    x = _num(value)
    if x is None:
        return DASH
    if kind not in ("qty", "share", "int", "intensity", "pue"):
        raise ValueError(f"unknown number kind {kind!r}")
    if kind == "share":
        x *= 100.0
    if decimals is None and kind == "qty":
        text = num(x)
    elif decimals is None and kind == "share":  # as fmt.pct / fmt.signed_pct
        return f"{x:+.1f}" if signed else f"{x:.1f}"
    else:
        d = decimals if decimals is not None else {"pue": 2}.get(kind, 0)
        text = f"{x:,.{d}f}"
    if text.lstrip("-").strip("0.,") == "":  # rounds to zero: no "-0"
        text = text.lstrip("-")
    elif signed and x > 0:
        text = "+" + text
    return text


def _e(value: Any) -> str:
    """Escape a report string for HTML text and attribute values (control and bidi characters dropped first)."""
    return "" if value is None else html.escape(clean(value), quote=True)


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(key)
    return mapping


def _list(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, Sequence) and not isinstance(
        value, str | bytes) else []


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t.replace(tzinfo=UTC) if t.tzinfo is None else t).astimezone(UTC)


def _when(value: Any) -> str:
    t = _parse_time(value)
    return _e(value) if t is None else t.strftime("%Y-%m-%d %H:%M UTC")


def _day_label(d: date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}"


def _qty(value: Any, unit: str, kind: str = "qty", **kw: Any) -> str:
    return f'<span class="num">{fmt(value, kind, **kw)}</span>&nbsp;{unit}' if unit else fmt(value, kind, **kw)


# --------------------------------------------------------------------------- SVG helpers


def _nice_step(raw: float) -> float:
    if not raw > 0:
        return 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * mag >= raw * (1 - 1e-9):
            return m * mag
    return 10.0 * mag


def _ticks(vmax: float, intervals: int | None = None, target: int = 5) -> tuple[list[float], int]:
    """Ticks 0..top covering vmax; with `intervals`, exactly that many (to share gridlines with another axis)."""
    if not vmax > 0:
        vmax = 1.0
    if intervals is None:
        step = _nice_step(vmax / target)
        intervals = max(1, math.ceil(vmax / step - 1e-9))
    else:
        step = _nice_step(vmax / intervals)
    decimals = next((d for d in range(7) if abs(round(step, d) - step) <= 1e-9 * step), 6)
    return [step * i for i in range(intervals + 1)], decimals


def _f(x: float) -> str:
    """An SVG coordinate (finite by construction; 0 if not)."""
    return f"{x:.1f}" if math.isfinite(x) else "0"


def _text(x: float, y: float, text: str, cls: str = "", anchor: str = "start", extra: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}"{c}{extra}>{text}</text>'


def _text_width(text: str, size: float = 12.0) -> float:
    return len(text) * size * 0.6


def _truncate(text: str, width: float, size: float = 12.0) -> str:
    n = max(4, int(width / (size * 0.6)))
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _svg_open(chart_id: str, width: int, height: int, title: str, desc: str) -> str:
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-labelledby="{chart_id}-title {chart_id}-desc" preserveAspectRatio="xMidYMid meet">'
            f'<title id="{chart_id}-title">{_e(title)}</title><desc id="{chart_id}-desc">{_e(desc)}</desc>')


def _legend(items: Sequence[tuple[str, str]], x0: float, y: float, x_max: float) -> tuple[list[str], float]:
    """Legend entries (swatch svg, label) laid out left to right, wrapping; returns the parts and the next y."""
    out: list[str] = []
    x = x0
    for swatch, label in items:
        w = 20 + _text_width(label) * 0.92 + 22
        if x > x0 and x + w > x_max:
            x, y = x0, y + 18
        out.append(f'<g transform="translate({_f(x)},{_f(y)})">{swatch}{_text(20, 4, _e(label), "legend")}</g>')
        x += w
    return out, y + 18


def _swatch_rect(colour: str, hatch_id: str | None = None) -> str:
    if hatch_id:
        return (f'<rect x="0" y="-6" width="14" height="12" fill="url(#{hatch_id})" stroke="{colour}" '
                f'stroke-width="1"/>')
    return f'<rect x="0" y="-6" width="14" height="12" fill="{colour}"/>'


def _swatch_line(colour: str, dash: str = "") -> str:
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="0" y1="0" x2="14" y2="0" stroke="{colour}" stroke-width="2.5"{d}/>'
            f'<circle cx="7" cy="0" r="3" fill="{colour}"/>')


def _no_data(chart_id: str, caption: str, message: str) -> str:
    return (f'<figure class="chart" id="{chart_id}"><figcaption>{caption}</figcaption>'
            f'<p class="nodata">{_e(message)}</p></figure>')


def _figure(chart_id: str, caption: str, svg: str, note: str = "") -> str:
    n = f'<p class="chart-note">{note}</p>' if note else ""
    return f'<figure class="chart" id="{chart_id}"><figcaption>{caption}</figcaption>{svg}{n}</figure>'


# --------------------------------------------------------------------------- chart 1: emissions by phase


def _included_layers(report: Mapping[str, Any]) -> list[str]:
    rows = _list(report.get("layers"))
    if rows:
        return [str(r.get("layer")) for r in rows if r.get("included") is True]
    sel = _get(report, "method", "layers_selected")
    return [str(x) for x in sel] if isinstance(sel, list) else ["gpu", "idle", "pue"]


def chart_phases(report: Mapping[str, Any]) -> str:
    cid = "chart-phases"
    caption = f"Emissions by phase and accounting layer (kg {CO2})"
    phases = _list(report.get("phases"))
    if not phases:
        return _no_data(cid, caption, "No phases in this window.")
    included = _included_layers(report)
    present = [lay for lay in LAYERS if any(_num(_get(p, "layers", lay, "emissions_kg")) for p in phases)
               or lay in included]
    order = [lay for lay in present if lay in included] + [lay for lay in present if lay not in included]
    values = [[max(0.0, _num(_get(p, "layers", lay, "emissions_kg")) or 0.0) for lay in order] for p in phases]
    totals = [sum(v) for v in values]
    labels = [str(p.get("title") or p.get("phase") or "?") for p in phases]

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

    desc = "; ".join(f"{t}: {fmt(p.get('emissions_kg'))} kg {CO2} included"
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
        value = f"{fmt(phase.get('emissions_kg'))} kg"
        parts.append(_text(sx(acc) + 6, y + bar_h / 2 + 4, value, "value"))
    if not any(totals):
        parts.append(_text((x0 + x1) / 2, top + plot_h / 2, "all values are zero", "empty", "middle"))
    parts.append("</svg>")
    note = ("Solid: layers included in the total. Hatched: computed but not included. "
            "The number after each bar is the phase's emissions as reported (included layers).")
    return _figure(cid, caption, "".join(parts), note)


# --------------------------------------------------------------------------- chart 2: daily energy and emissions


def chart_daily(report: Mapping[str, Any]) -> str:
    cid = "chart-daily"
    caption = f"Daily GPU and CPU energy (kWh, bars) and emissions (kg {CO2}, line)"
    days: dict[date, tuple[float, float]] = {}
    for row in _list(report.get("daily")):
        try:
            d = date.fromisoformat(str(row.get("date"))[:10])
        except ValueError:
            continue
        energy = (_num(row.get("energy_kwh")) or 0.0) + (_num(row.get("cpu_energy_kwh")) or 0.0)
        days[d] = (max(0.0, energy), max(0.0, _num(row.get("emissions_kg")) or 0.0))
    if not days:
        return _no_data(cid, caption, "No measured data in this window.")
    first, last = min(days), max(days)
    n = (last - first).days + 1
    width, height = 1100, 340
    x0, x1 = 78.0, width - 78.0
    legend, top = _legend([(_swatch_rect(ENERGY_COLOUR), "energy (kWh, left axis)"),
                           (_swatch_line(EMISSIONS_COLOUR), f"emissions (kg {CO2}, right axis)")], x0, 16, x1)
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


def _polyline(points: Sequence[tuple[float, float] | None], colour: str, cls: str, markers: bool) -> str:
    """A path through the points, broken at None; isolated points (and all points with `markers`) get a dot."""
    runs: list[list[tuple[float, float]]] = [[]]
    for p in points:
        if p is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(p)
    d = " ".join("M" + " L".join(f"{_f(x)},{_f(y)}" for x, y in run) for run in runs if len(run) > 1)
    out = [f'<path class="{cls}" d="{d}" fill="none" stroke="{colour}" stroke-width="2.2" '
           f'stroke-linejoin="round"/>'] if d else []
    for run in runs:
        if markers or len(run) == 1:
            out += [f'<circle class="{cls} dot" cx="{_f(x)}" cy="{_f(y)}" r="3" fill="{colour}"/>' for x, y in run]
    return "".join(out)


# --------------------------------------------------------------------------- chart 3: power vs grid intensity


def chart_power_intensity(report: Mapping[str, Any]) -> str:
    cid = "chart-power-intensity"
    caption = "Hourly GPU power and grid carbon intensity (gCO\u2082eq/kWh) per zone, UTC"
    power: dict[str, dict[datetime, float]] = {}
    inten_sum: dict[str, dict[datetime, list[float]]] = {}
    for row in _list(report.get("hourly")):
        t = _parse_time(row.get("hour"))
        if t is None:
            continue
        t = t.replace(minute=0, second=0, microsecond=0)
        cluster, zone = str(row.get("cluster") or "?"), str(row.get("zone") or "?")
        p = _num(row.get("power_w"))
        if p is not None:
            power.setdefault(cluster, {})[t] = power.get(cluster, {}).get(t, 0.0) + max(0.0, p)
        g = _num(row.get("intensity_g_per_kwh"))
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


def _time_ticks(t_start: datetime, t_end: datetime, sx: Any, y_axis: float, px_per_hour: float) -> list[str]:
    step_h = next((s for s in (1, 2, 3, 6, 12, 24, 48, 72, 168, 336, 720) if s * px_per_hour >= 64), 720)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    hours_since = math.ceil((t_start - epoch).total_seconds() / 3600 / step_h) * step_h
    t = epoch + timedelta(hours=hours_since)
    out: list[str] = []
    last_day: date | None = None
    while t <= t_end:
        x = sx(t)
        out.append(f'<line class="axis" x1="{_f(x)}" y1="{_f(y_axis)}" x2="{_f(x)}" y2="{_f(y_axis + 4)}"/>')
        if step_h >= 24:
            out.append(_text(x, y_axis + 18, _day_label(t.date()), "tick", "middle"))
        else:
            out.append(_text(x, y_axis + 18, f"{t:%H}:00", "tick", "middle"))
            if t.date() != last_day:
                out.append(_text(x, y_axis + 32, _day_label(t.date()), "tick sub", "middle"))
                last_day = t.date()
        t += timedelta(hours=step_h)
    if not out:  # the window is shorter than one step: label its start
        out.append(_text(sx(t_start), y_axis + 18, f"{t_start:%H}:00", "tick", "start"))
        out.append(_text(sx(t_start), y_axis + 32, _day_label(t_start.date()), "tick sub", "start"))
    return out


# --------------------------------------------------------------------------- page sections


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


def _fleet(report: Mapping[str, Any]) -> str:
    if report.get("kind") != "fleet":
        return ""
    out = []
    projects = _list(report.get("projects"))
    rows = []
    for p in projects:
        ph = " \u00b7 ".join(f"{_e(x.get('phase'))} {fmt(x.get('emissions_kg'))}&nbsp;kg"
                             for x in _list(p.get("phases")))
        rows.append(_tr([(f"<b>{_e(p.get('project'))}</b>", False), (ph, False), (fmt(p.get("gpu_hours")), True),
                         (fmt(p.get("cpu_hours")), True), (fmt(p.get("energy_kwh")), True),
                         (fmt(p.get("cpu_energy_kwh")), True), (fmt(p.get("emissions_kg")), True),
                         (fmt(p.get("previous_emissions_kg")), True),
                         (_qty(p.get("change_pct"), "%", "share", signed=True) if _num(p.get("change_pct")) is not None
                          else DASH, True)]))
    out.append('<section id="projects"><h2>Projects</h2>' + (_table(
        [("Project", False), (f"Phases (kg {CO2})", False), ("GPU-hours", True), ("CPU core-hours", True),
         ("GPU energy (kWh)", True), ("CPU energy (kWh)", True), (f"Emissions (kg {CO2})", True),
         ("Previous (kg)", True), ("Change", True)], rows, "projects")
        if rows else "<p>No projects.</p>") + "</section>")
    rows = [_tr([(f"<b>{_e(c.get('cluster'))}</b>", False), (_e(c.get("provider")), False),
                 (f"{_e(c.get('region'))} ({_e(c.get('zone'))})", False), (fmt(c.get("pue"), "pue"), True),
                 (fmt(c.get("gpus"), "int"), True), (fmt(c.get("energy_kwh")), True),
                 (fmt(c.get("job_energy_kwh")), True), (fmt(c.get("idle_energy_kwh")), True),
                 (fmt(c.get("idle_share"), "share"), True), (fmt(c.get("cpu_sockets"), "int"), True),
                 (fmt(c.get("cpu_energy_kwh")), True), (fmt(c.get("cpu_idle_energy_kwh")), True),
                 (fmt(c.get("cpu_idle_share"), "share"), True), (fmt(c.get("intensity_g_per_kwh"), "intensity"), True),
                 (fmt(c.get("emissions_kg")), True)]) for c in _list(report.get("clusters"))]
    if rows:
        out.append('<section id="clusters"><h2>Clusters</h2>' + _table(
            [("Cluster", False), ("Provider", False), ("Region (zone)", False), ("PUE", True), ("GPUs", True),
             ("GPU energy (kWh)", True), ("Jobs (kWh)", True), ("Idle (kWh)", True), ("Idle (%)", True),
             ("CPU sockets", True), ("CPU energy (kWh)", True), ("Host idle (kWh)", True), ("Host idle (%)", True),
             ("Intensity (g/kWh)", True), (f"Emissions (kg {CO2})", True)], rows, "clusters") + "</section>")
    rows = [_tr([(_e(j.get("cluster")), False), (f"<code>{_e(j.get('job_id'))}</code>", False),
                 (_e(j.get("project")), False), (_e(j.get("phase")), False), (_e(j.get("user")) or DASH, False),
                 (fmt(j.get("gpu_hours")), True), (fmt(j.get("cpu_hours")), True), (fmt(j.get("energy_kwh")), True),
                 (fmt(j.get("cpu_energy_kwh")), True), (fmt(j.get("emissions_kg")), True)])
            for j in _list(report.get("top_jobs"))]
    if rows:
        out.append('<section id="top-jobs"><h2>Top jobs</h2>' + _table(
            [("Cluster", False), ("Job", False), ("Project", False), ("Phase", False), ("User", False),
             ("GPU-hours", True), ("CPU core-hours", True), ("GPU energy (kWh)", True), ("CPU energy (kWh)", True),
             (f"Emissions (kg {CO2})", True)], rows, "jobs")
            + "</section>")
    rec = report.get("reconciliation")
    if isinstance(rec, Mapping):
        parts = (("projects_energy_kwh", "projects' jobs"), ("not_in_ledger_kwh", "jobs not in the ledger"),
                 ("idle_apportioned_kwh", "idle, apportioned to jobs"),
                 ("idle_unapportioned_kwh", "idle, not apportioned"))
        rows = [_tr([("<b>whole fleet (GPU energy)</b>", False), (f"<b>{fmt(rec.get('fleet_energy_kwh'))}</b>", True)])]
        rows += [_tr([(label, False), (fmt(rec.get(k)), True)]) for k, label in parts]
        values = [_num(rec.get(k)) for k, _ in parts]
        if all(v is not None for v in values):
            rows.append(_tr([("sum of the parts", False), (fmt(sum(v or 0.0 for v in values)), True)], "sum"))
        note = f'<p class="source">{_e(rec.get("note"))}</p>' if rec.get("note") else ""
        host = rec.get("cpu")
        if isinstance(host, Mapping):
            hrows = [_tr([("<b>whole fleet (host CPU energy)</b>", False),
                          (f"<b>{fmt(host.get('fleet_energy_kwh'))}</b>", True)])]
            hrows += [_tr([(label.replace("idle", "host idle"), False), (fmt(host.get(k)), True)])
                      for k, label in parts]
            hvalues = [_num(host.get(k)) for k, _ in parts]
            if all(v is not None for v in hvalues):
                hrows.append(_tr([("sum of the parts", False), (fmt(sum(v or 0.0 for v in hvalues)), True)], "sum"))
            note += (_table([("Host CPU energy (RAPL)", False), ("kWh", True)], hrows, "reconciliation host")
                     + (f'<p class="source">{_e(host.get("note"))}</p>' if host.get("note") else ""))
        counters = rec.get("gpu_counters") if isinstance(rec.get("gpu_counters"), Mapping) else None
        if counters is not None:
            crow = _counters_row(counters)
            diffs = counters.get("differences") or []
            note += _table([("GPU energy against the GPUs' hardware counters", False), ("", True)], [crow],
                           "reconciliation counters")
            if diffs:
                note += _table([("Hour", False), ("Cluster", False), ("Node", False), ("GPU", False),
                                ("Priced kWh", True), ("Counter kWh", True), ("Cause", False)],
                               [_tr([(_e(d.get("hour")), False), (_e(d.get("cluster")), False),
                                     (_e(d.get("hostname")), False), (_e(d.get("gpu")), False),
                                     (fmt(d.get("priced_kwh")), True), (fmt(d.get("counter_kwh")), True),
                                     (_e(d.get("cause")), False)]) for d in diffs if isinstance(d, Mapping)],
                               "reconciliation differences")
        out.append('<section id="reconciliation"><h2>Reconciliation</h2>'
                   + _table([("GPU energy", False), ("kWh", True)], rows, "reconciliation") + note + "</section>")
    return "".join(out)


CSS = """
:root{--fg:#1a202c;--muted:#5a6472;--line:#d9dee5;--accent:#2b6cb0}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;color:var(--fg);background:#fff;font:15px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",
 Helvetica,Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:20px 32px 48px}
h1{font-size:28px;margin:2px 0 4px}
h2{font-size:20px;margin:28px 0 10px;padding-bottom:4px;border-bottom:2px solid var(--line)}
h3{font-size:16px;margin:0 0 6px}
.kind,.meta,.source,.chart-note,.sub{color:var(--muted)}
.kind{margin:0;font-size:13px;text-transform:uppercase;letter-spacing:.04em}
.meta{margin:0}
.num{font-variant-numeric:tabular-nums}
.banner{margin:16px 0;padding:10px 16px;border:1px solid #dd6b20;border-left:8px solid #dd6b20;
 background:#fffaf0;border-radius:4px}
.banner.poor{border-color:#c53030;background:#fff5f5}
.banner h2{border:0;margin:0 0 4px;font-size:17px;color:#9c4221}
.banner.poor h2{color:#9b2c2c}
.banner ul{margin:0;padding-left:20px}
.headline .big{font-size:40px;font-weight:700;margin:0;line-height:1.1}
.headline p{margin:4px 0}
.statement{max-width:900px}
.phases{display:grid;grid-template-columns:repeat(auto-fill,minmax(350px,1fr));gap:14px}
.phase{border:1px solid var(--line);border-radius:6px;padding:10px 14px;break-inside:avoid}
.phase.estimated{border-style:dashed;border-color:#b7791f;background:#fffff0}
.phase ul{margin:0;padding-left:18px}
.badge{display:inline-block;font-size:12px;font-weight:600;padding:1px 7px;border-radius:10px;
 vertical-align:middle;font-style:normal}
.badge.measured{background:#e6fffa;color:#234e52;border:1px solid #81e6d9}
.badge.estimated{background:#fefcbf;color:#744210;border:1px solid #d69e2e}
.badge.best{background:#c6f6d5;color:#22543d;border:1px solid #68d391}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:14px}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f4f6f9;font-weight:600}
.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
th.n{white-space:normal}
table.compact{font-size:13px;margin-top:6px}
table.whatif td{white-space:nowrap}
table.clusters,table.jobs,table.projects{font-size:13px}
table.clusters th,table.jobs th{padding:4px 5px}
tr.excluded td{color:var(--muted)}
tr.sum td{border-top:2px solid var(--fg)}
tr.best td{background:#f0fff4;font-weight:600}
tr.zero td{color:var(--muted)}
tr.poor td{color:#9b2c2c;font-weight:600}
.cols{display:grid;grid-template-columns:repeat(3,1fr);gap:18px;align-items:start}
figure.chart{margin:18px 0;break-inside:avoid}
figure.chart figcaption{font-weight:600;margin-bottom:4px}
figure.chart svg{display:block;width:100%;height:auto;max-width:100%}
.nodata{padding:28px;text-align:center;color:var(--muted);border:1px dashed var(--line);border-radius:6px}
svg text{font-family:system-ui,"DejaVu Sans",Helvetica,Arial,sans-serif;font-size:12px;fill:#2d3748}
svg .tick{fill:#4a5568}
svg .tick.sub{fill:#718096;font-size:11px}
svg .axis-title{font-size:12px;font-weight:600;fill:#4a5568}
svg .value{font-weight:600}
svg .empty{fill:#718096;font-size:14px}
svg .grid{stroke:#e2e8f0;stroke-width:1}
svg .axis{stroke:#718096;stroke-width:1}
code{font-size:13px}
footer{margin-top:36px;color:var(--muted);font-size:13px}
@media (max-width:900px){.cols{grid-template-columns:1fr}}
@media print{
 @page{size:A4;margin:14mm}
 body{font-size:11pt}
 main{max-width:none;padding:0}
 h2{break-after:avoid}
 section,table,figure,article{break-inside:avoid}
 .banner,.badge,tr.best td,th,.phase.estimated{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 svg{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


def render(report: Mapping[str, Any]) -> str:
    """The report (schema_version 1 dict) as a complete, self-contained HTML5 page."""
    if not isinstance(report, Mapping):
        raise TypeError(f"report must be a mapping, got {type(report).__name__}")
    title = report.get("title") or "Carbon report"
    body = [
        _header(report),
        _banner(report),
        _headline(report),
        _phases(report),
        _equivalences(report),
        _layers_table(report),
        '<section id="over-time"><h2>Over time</h2>', chart_daily(report), chart_power_intensity(report),
        "</section>",
        _data_quality(report),
        _whatif(report),
        _fleet(report),
        f'<footer>Generated by wattprint at {_when(report.get("generated_at"))} from report schema version '
        f'{_e(report.get("schema_version"))}. Numbers are rounded for display; the JSON and CSV reports carry '
        f"them unrounded.</footer>",
    ]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="generator" content="wattprint">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")
