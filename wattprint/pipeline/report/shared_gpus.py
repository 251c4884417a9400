"""Held but idle GPUs (the report's `held_idle` section) and the equal-share fallback (`data_quality.equal_share`),
from fct_job_gpu_held_idle_hour over the report's scope (rpt_rows must be built: scope.build_scope). Held-idle
energy is a part of the jobs' own GPU energy, shown beside it and never added to any total."""

from __future__ import annotations

import duckdb

from ..db import tables
from .layers import fraction
from .query import one, rows
from .scope import ReportOptions
from .types import NOT_IN_LEDGER, EqualShare, HeldIdle, HeldIdleJob


def measured(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the results have the table (a database built before it: the report leaves both sections out)."""
    return "fct_job_gpu_held_idle_hour" in tables(con)


def _params(o: ReportOptions) -> dict[str, object]:
    return {"start": o.window.start, "end": o.window.end, "project": o.project, "phases": list(o.phases),
            "with_pue": "pue" in o.layers}


def held_idle(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> HeldIdle:
    p = _params(o)
    t = one(con, "rpt_held_idle", p)
    jobs = tuple(
        HeldIdleJob(cluster=r["cluster"], job_id=r["job_id"], project=r["project"] or NOT_IN_LEDGER,
                    phase=r["phase"], user=r["user_name"], gpus=int(r["gpus"]), gpu_hours=r["held_idle_s"] / 3600.0,
                    energy_kwh=r["energy_j"] / 3.6e6, emissions_kg=r["emissions_g"] / 1000.0,
                    gpu_energy_share=fraction(r["energy_j"], r["gpu_j"]))
        for r in rows(con, "rpt_held_idle_jobs", {**p, "top": o.top_jobs}))
    return HeldIdle(energy_kwh=t["energy_j"] / 3.6e6, emissions_kg=t["emissions_g"] / 1000.0,
                    gpu_energy_share=fraction(t["energy_j"], t["gpu_j"]), gpu_hours=t["held_idle_s"] / 3600.0,
                    jobs=int(t["jobs"]), top_jobs=jobs)


def equal_share(con: duckdb.DuckDBPyConnection, o: ReportOptions) -> EqualShare:
    p = _params(o)
    del p["with_pue"]
    r = one(con, "rpt_equal_share", p)
    return EqualShare(gpu_hours=r["equal_share_s"] / 3600.0, shared_gpu_hours=r["shared_s"] / 3600.0,
                      share=fraction(r["equal_share_s"], r["shared_s"]))
