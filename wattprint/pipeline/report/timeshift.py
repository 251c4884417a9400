"""The time-shift what-if: each phase's (and each top job's) hourly energy profile started later, by whole hours up
to the slack, in the same zones, priced with the model's intensity rule at the moved hours; the cleanest start is
reported with its saving. A start is a candidate only where every moved hour has measured intensity (hourly, or the
nearest stored hour within the bound): a monthly mean or annual default would flatten the very differences the
what-if looks for. Starting at once (shift 0) is what happened and is always a candidate."""

from __future__ import annotations

from typing import Any

import duckdb

from ..db import run_sql
from ..settings import Settings
from .layers import Sums, fraction
from .query import rows
from .scope import ReportOptions
from .types.fleet import NOT_IN_LEDGER
from .types.timeshift import TimeShift, TimeShiftOption

DEFAULT_SLACK_HOURS = 24


def time_shift(con: duckdb.DuckDBPyConnection, settings: Settings, o: ReportOptions,
               slack_hours: int = DEFAULT_SLACK_HOURS, has_estimates: bool = False) -> TimeShift:
    """The time-shift what-if of the scope (rpt_rows must exist)."""
    c = 1.0 if o.inc_cpu else 0.0
    k = 1.0 if o.inc_idle else 0.0
    top = sorted(((Sums.of(r), r) for r in rows(con, "rpt_sums_by_job")),
                 key=lambda x: (-x[0].headline_kg(o), x[1]["cluster"], x[1]["job_id"]))[:o.top_jobs]
    jobs_of = {(r["cluster"], r["job_id"]): r for _, r in top}
    run_sql(con, "rpt_time_shift_profile", {"c": c, "k": k, "n": 1.0 if o.inc_node else 0.0,
                                            "pue": "pue" in o.layers})
    run_sql(con, "rpt_time_shift_needed", {"slack_h": slack_hours})
    run_sql(con, "macros_intensity")
    b = settings.build_settings()
    priced = rows(con, "rpt_time_shift", {
        "slack_h": slack_hours, "bound_h": b.nearest_hour_bound_h, "world_g_per_kwh": b.world_g_per_kwh,
        "jobs": [{"cluster": cl, "job_id": j} for cl, j in jobs_of]})
    for t in ("rpt_shift_profile", "rpt_shift_needed"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    by_entity: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in priced:
        by_entity.setdefault((r["kind"], r["name"], r["cluster"]), []).append(r)
    options = {key: _option(key, shifts, jobs_of) for key, shifts in by_entity.items()}
    phases = tuple(sorted((v for (kind, _, _), v in options.items() if kind == "phase"), key=lambda x: x.phase))
    jobs = tuple(options[("job", j, cl)] for cl, j in jobs_of if ("job", j, cl) in options)
    actual = sum(p.actual_kg for p in phases)
    saving = sum(p.saving_kg for p in phases)
    note = (f"each phase's and top job's hourly energy, as the headline counts it, started 1 to {slack_hours} h later "
            "in the same zones and priced with the model's intensity rule at the moved hours; a later start counts "
            "only where every moved hour has measured intensity; embodied emissions do not move with the work")
    if has_estimates:
        note += "; estimated phases have no hourly profile and are left out"
    return TimeShift(slack_hours=slack_hours, phases=phases, jobs=jobs, saving_kg=saving,
                     saving_pct=fraction(saving, actual), note=note)


def _option(key: tuple[str, str, str], shifts: list[dict[str, Any]],
            jobs_of: dict[tuple[str, str], dict[str, Any]]) -> TimeShiftOption:
    kind, name, cluster = key
    by_shift = {int(r["shift_h"]): r for r in shifts}
    actual = by_shift[0]
    candidates = [s for s, r in sorted(by_shift.items()) if s == 0 or r["measured"]]
    best = min(candidates, key=lambda s: (by_shift[s]["grams"], s))
    actual_kg, best_kg = actual["grams"] / 1000.0, by_shift[best]["grams"] / 1000.0
    saving = max(0.0, actual_kg - best_kg)
    job = jobs_of.get((cluster, name)) if kind == "job" else None
    return TimeShiftOption(
        kind=kind, phase=job["phase"] if job is not None else name,
        project=(job["project"] or NOT_IN_LEDGER) if job is not None else None,
        cluster=cluster if job is not None else None, job_id=name if job is not None else None,
        energy_kwh=actual["energy_j"] / 3.6e6, actual_kg=actual_kg, best_shift_hours=best, best_kg=best_kg,
        saving_kg=saving, saving_pct=fraction(saving, actual_kg),
        shifts_measured=sum(1 for s, r in by_shift.items() if s > 0 and r["measured"]))
