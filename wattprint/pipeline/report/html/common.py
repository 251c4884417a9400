"""Numbers, text and vocabulary shared by the charts and the page sections.

Every number on the page goes through `fmt`, so a figure printed here is the report's value rounded one way,
everywhere, and the same way as the Markdown report (quantities go through `pipeline.report.fmt.num`); the JSON
and CSV carry the unrounded values, and tests compare `fmt(value)` with the page:

    kg, kWh, hours, miles   `num`: thousands separators; none from 100, 1 decimal from 0.1, 2 significant digits below
    share                   a 0..1 fraction (the report's shares and its *_pct fields) in percent, 1 decimal
                            (as `fmt.pct` / `fmt.signed_pct`, without the " %")
    intensity, counts       0 decimals;  PUE 2 decimals
    missing, NaN, infinite  "\u2014"

Every string that comes from the report goes through `_e` (project, cluster and user names come from users).
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

from ..fmt import num
from ..names import clean
from ..types import Report

LAYERS = ("gpu", "cpu", "node", "idle", "pue", "embodied")
LAYER_NAMES = {"gpu": "GPU", "cpu": "CPU (host)", "node": "node residual (BMC)", "idle": "idle GPUs and hosts",
               "pue": "facility (PUE)", "embodied": "embodied"}
DASH = "\u2014"
CO2 = "CO\u2082eq"
G_KWH = "gCO\u2082eq/kWh"


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


def _parse_time(value: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t.replace(tzinfo=UTC) if t.tzinfo is None else t).astimezone(UTC)


def _when(value: str) -> str:
    t = _parse_time(value)
    return _e(value) if t is None else t.strftime("%Y-%m-%d %H:%M UTC")


def _qty(value: Any, unit: str, kind: str = "qty", **kw: Any) -> str:
    return f'<span class="num">{fmt(value, kind, **kw)}</span>&nbsp;{unit}' if unit else fmt(value, kind, **kw)


def market_note(location_kg: Any) -> str:
    """' (Scope 2 market-based; location-based 30.7 kg)' beside a market-based figure (location_kg given), else ''."""
    if location_kg is None:
        return ""
    return f" (Scope 2 market-based; location-based {_qty(location_kg, 'kg')})"


def _included_layers(report: Report) -> list[str]:
    """The layers in the headline: the included rows of the layers table, else method.layers_selected."""
    if report.layers:
        return [r.layer for r in report.layers if r.included]
    return list(report.method.layers_selected)
