"""How numbers look in the human formats (Markdown, HTML). JSON and CSV carry them unrounded."""

from __future__ import annotations

import math


def num(x: float | None, unit: str = "") -> str:
    """kg, kWh, hours: 1 decimal below 100, none above, thousands separators; '-' for missing."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    a = abs(x)
    text = f"{x:,.0f}" if a >= 100 else f"{x:,.1f}" if a >= 0.1 or a == 0 else f"{x:.2g}"
    return f"{text} {unit}".rstrip()


def pct(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{100 * x:.1f} %"


def signed_pct(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{100 * x:+.1f} %"


def intensity(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:,.0f} gCO2eq/kWh"


def tonnes_or_kg(kg: float) -> str:
    """The IDEFICS card's total style: tons above 1,000 kg."""
    return f"{kg / 1000:,.2f} tons" if kg >= 1000 else f"{num(kg)} kg"
