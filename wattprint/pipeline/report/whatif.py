"""The what-if section: the scope's measured hours priced in every configured zone, with the model's intensity rule
at the same hours (macros_intensity.sql), against where they ran."""

from __future__ import annotations

import duckdb

from ..db import run_sql
from ..settings import Settings
from .layers import Sums, fraction, share
from .query import one, rows
from .scope import ReportOptions
from .types import WhatIf, WhatIfOption


def whatif(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions, has_estimates: bool) -> WhatIf:
    """The scope's hourly energy priced in each configured zone (the same fallback chain as the model)."""
    candidates = rows(con, "rpt_whatif_clusters")
    k = 1.0 if o.inc_idle else 0.0
    c = 1.0 if o.inc_cpu else 0.0
    measured = Sums.of(one(con, "rpt_sums"))
    actual_kg = measured.operational_g(o) / 1000.0
    n = 1.0 if o.inc_node else 0.0
    note = ("the measured hours' GPU" + (" and CPU" if o.inc_cpu else "") + " energy" +
            (" and node residual" if o.inc_node else "") +
            (" and idle share" if o.inc_idle else "") +
            (", times each cluster's PUE," if "pue" in o.layers else "") +
            " priced with each zone's intensity at the same hours; embodied emissions do not move with the work")
    if has_estimates:
        note += "; estimated phases have no hourly profile and are left out"
    if not candidates or measured.energy_j + c * measured.cpu_j <= 0:
        note += "; no cluster with a zone is configured" if not candidates else ""
        return WhatIf(actual_kg=actual_kg, options=(), best=None, saving_kg=0.0, saving_pct=0.0, note=note)
    run_sql(con, "rpt_profile", {"c": c, "k": k, "n": n})
    run_sql(con, "rpt_intensity_needed", {"zones": sorted({r["zone"] for r in candidates})})
    b = settings.build_settings()
    run_sql(con, "macros_intensity")   # the model's intensity rule, for other zones at the same hours
    priced = {r["zone"]: r for r in rows(con, "rpt_whatif_priced", {"bound_h": b.nearest_hour_bound_h,
                                                                     "world_g_per_kwh": b.world_g_per_kwh})}
    options = []
    for z in candidates:
        p = priced.get(z["zone"])
        g, e, h = (p["grams"], p["energy_j"], p["hourly_j"]) if p is not None else (0.0, 0.0, 0.0)
        factor = z["pue"] if "pue" in o.layers else 1.0
        kg = g * factor / 1000.0
        options.append(WhatIfOption(cluster=z["cluster"], provider=z["provider"], region=z["region"], zone=z["zone"],
                                    pue=z["pue"], emissions_kg=kg, intensity_g_per_kwh=share(g, e / 3.6e6),
                                    hourly_share=fraction(h, e), delta_kg=_delta(kg, actual_kg)))
    best = min(options, key=lambda x: x.emissions_kg)
    saving_kg = max(0.0, actual_kg - best.emissions_kg)
    for t in ("rpt_profile", "rpt_intensity_needed"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    return WhatIf(actual_kg=actual_kg, options=tuple(options), best=best, saving_kg=saving_kg,
                  saving_pct=fraction(saving_kg, actual_kg), note=note)


def _delta(kg: float, actual_kg: float) -> float:
    """The option against the actual emissions; 0 within rounding (the cluster the work ran on, priced the same way
    in another order of additions, differs only in the last bits: shown as +1e-13 kg it would read as a change)."""
    d = kg - actual_kg
    return 0.0 if abs(d) <= 1e-9 * max(abs(kg), abs(actual_kg)) else d
