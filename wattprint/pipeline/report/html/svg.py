"""SVG primitives of the charts: axis ticks, coordinates, text, legends, swatches, lines and the figure around."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .common import _e

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _day_label(d: date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}"


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
