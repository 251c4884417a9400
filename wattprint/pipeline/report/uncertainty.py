"""Uncertainty bands of the headline numbers, by interval arithmetic: every input of a row of the scope (its energy,
its intensity, its PUE, its embodied rate) has a relative low and high bound by how it was obtained
(data/uncertainty.csv, each bound cited or labelled as wattprint's assumption). Emissions are a product of positive
factors summed over rows, so the lowest headline is every row at its low bounds and the highest every row at its
high bounds (sql/rpt_uncertainty.sql). Manual phases (estimated from TDP) are banded here from their own inputs:
TDP energy, the declared (yearly) intensity, the declared PUE. No sampling: the same inputs give the same band.

Under a market-based headline (--scope2-basis market) the bands are those of the market-based figures
(sql/rpt_uncertainty_market.sql): energy and PUE bounds on all the electricity, a contractual instrument's factor
exact, the residual mix at its own bounds, energy priced at the location-based fallback at its intensity's bounds.
Manual phases are never matched to instruments: their band is the same under either basis."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from functools import cache
from importlib.resources import files

import duckdb

from ..emissions import emissions_g
from ..errors import InputError
from ..estimate import ManualPhase
from ..settings import Settings
from .layers import Sums, included
from .query import rows
from .scope import ReportOptions, embodied_rate
from .types import Phase
from .types.fleet import NOT_IN_LEDGER
from .types.uncertainty import Band, Bound, Uncertainty

FILE = "wattprint/pipeline/data/uncertainty.csv"
INPUTS = ("energy", "intensity", "pue", "embodied")
# the classes only a market-based headline prices with (a contractual instrument's factor, a residual mix): a
# location-based report neither uses nor lists them
MARKET_ONLY = (("intensity", "contractual"), ("intensity", "residual_mix"))
METHOD = ("interval arithmetic: each row of the scope priced with its energy, intensity, PUE and embodied rate all "
          "at their low bounds, then all at their high bounds, summed; bounds by how each input was obtained")


@cache
def bounds() -> tuple[Bound, ...]:
    """The shipped table of relative bounds, checked: low <= 0 <= high for every row, a source for every row."""
    text = (files("wattprint.pipeline") / "data" / "uncertainty.csv").read_text(encoding="utf-8")
    out = []
    for n, r in enumerate(csv.DictReader(text.splitlines()), start=2):
        low, high = float(r["low"]), float(r["high"])
        if r["input"] not in INPUTS or not low <= 0.0 <= high or low <= -1.0 or not r["source"].strip():
            raise InputError(f"{FILE}:{n}", f"bad bound {r}", "each row needs an input of " + ", ".join(INPUTS)
                             + ", -1 < low <= 0 <= high and a source")
        out.append(Bound(input=r["input"], quality=r["class"], low_pct=low, high_pct=high, source=r["source"]))
    return tuple(out)


def bound(input_: str, quality: str) -> Bound:
    return next(b for b in bounds() if b.input == input_ and b.quality == quality)


def _load(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE OR REPLACE TEMP TABLE rpt_bounds (input VARCHAR, class VARCHAR, low DOUBLE, high DOUBLE)")
    con.executemany("INSERT INTO rpt_bounds VALUES (?, ?, ?, ?)",
                    [(b.input, b.quality, b.low_pct, b.high_pct) for b in bounds()])


def _band(name: str, label: str | None, point_kg: float, low_kg: float, high_kg: float) -> Band:
    """low and high kept on either side of the point against floating-point rounding (the bounds are checked to
    be <= 0 and >= 0, so only rounding can put them on the wrong side)."""
    return Band(name=name, label=label, emissions_kg=point_kg, low_kg=min(low_kg, point_kg),
                high_kg=max(high_kg, point_kg))


def estimate_band(settings: Settings, o: ReportOptions, group: Sequence[ManualPhase]) -> tuple[float, float]:
    """The low and high headline kg of a group of manual phases: TDP energy at the estimated_tdp bounds, the declared
    intensity at the annual_default bounds, the declared PUE at the declared bounds, embodied as measured rows."""
    inc = included(o)
    e, i, u, m = (bound("energy", "estimated_tdp"), bound("intensity", "annual_default"), bound("pue", "declared"),
                  bound("embodied", "amortised"))
    out = []
    for side in ("low_pct", "high_pct"):
        fe, fi, fu, fm = (1 + getattr(b, side) for b in (e, i, u, m))
        g = 0.0
        for ph in group:
            r = ph.estimate
            own = (r.gpu_it_j if "gpu" in inc else 0.0) + (r.cpu_it_j if "cpu" in inc else 0.0)
            pue_j = r.gpu_it_j + (r.cpu_it_j if "cpu" in inc else 0.0)
            g += emissions_g(own * fe, r.intensity_g_per_kwh * fi)
            if "pue" in inc:
                g += emissions_g(pue_j * fe, r.intensity_g_per_kwh * fi, max(1.0, r.pue * fu) - 1.0)
            if "embodied" in inc and r.gpu_hours:
                rate = embodied_rate(settings, ph.cluster, r.gpu_model or "", o).kg_per_gpu_hour
                g += r.gpu_hours * rate * 1000.0 * fm
        out.append(g / 1000.0)
    return out[0], out[1]


def uncertainty(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions,
                blocks: Sequence[tuple[Phase, Sums]], estimates: Sequence[ManualPhase], headline_kg: float,
                projects: Sequence[tuple[str, float]] = ()) -> Uncertainty:
    """The bands of the report's headline numbers (rpt_rows must exist; under a market-based headline
    rpt_scope2_priced too): the total (`headline_kg`), each phase block, and each of `projects` ((name, emissions_kg)
    of the all-projects report), all on the headline's Scope 2 basis."""
    _load(con)
    inc = included(o)
    market = o.scope2_basis == "market"
    c, k = 1.0 if o.inc_cpu else 0.0, 1.0 if o.inc_idle else 0.0
    n = 1.0 if o.inc_node else 0.0
    got = (rows(con, "rpt_uncertainty_market", {"c": c, "k": k, "n": n, "p": 1.0 if "pue" in inc else 0.0,
                                                "m": "embodied" in inc}) if market else
           rows(con, "rpt_uncertainty", {"g": "gpu" in inc, "c": c, "k": k, "n": n, "p": "pue" in inc,
                                         "m": "embodied" in inc}))
    con.execute("DROP TABLE IF EXISTS rpt_bounds")
    by = {(r["kind"], r["name"]): (r["low_g"] / 1000.0, r["high_g"] / 1000.0) for r in got}
    lo, hi = by.get(("total", ""), (0.0, 0.0))
    phases = []
    groups: dict[tuple[str, str], list[ManualPhase]] = {}
    for e in estimates:
        groups.setdefault((e.phase, e.name or ""), []).append(e)
    # phases.phase_blocks makes a block per group, in this order, then sorts the blocks stably by phase: so a
    # phase's estimated blocks are its groups in this order
    queue = {ph: [g for (gp, _), g in groups.items() if gp == ph] for ph, _ in groups}
    for p, _ in blocks:
        if p.label == "measured":
            plo, phi = by.get(("phase", p.phase), (0.0, 0.0))
        else:
            plo, phi = estimate_band(settings, o, queue[p.phase].pop(0))
            lo, hi = lo + plo, hi + phi
        phases.append(_band(p.phase, p.label, p.emissions_kg, plo, phi))
    bands = tuple(_band(name, None, kg, *by.get(("project", "" if name == NOT_IN_LEDGER else name), (0.0, 0.0)))
                  for name, kg in projects)
    note = ("a range, not a confidence interval: every input of every row at its low bound, then at its high bound "
            "(the worst case of the bounds together), priced as the headline; bounds in the table, each with its "
            "source or marked as wattprint's assumption")
    if market:
        note += ("; market-based, as the headline: energy and PUE bounds on all the electricity, a contractual "
                 "instrument's factor exact (class contractual), the residual mix at class residual_mix, energy "
                 "priced at the location-based fallback at its intensity's bounds; estimated phases as under "
                 "location basis (no instrument covers them)")
    return Uncertainty(method=METHOD, total=_band("", None, headline_kg, lo, hi), phases=tuple(phases),
                       projects=bands, note=note, basis="market" if market else None,
                       bounds=tuple(b for b in bounds() if market or (b.input, b.quality) not in MARKET_ONLY))
