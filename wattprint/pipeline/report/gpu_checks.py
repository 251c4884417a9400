"""The data-quality checks a report makes of its GPUs: telemetry gaps per GPU, every GPU-hour's priced energy
against the GPU's hardware energy counter (fct_gpu_hour), with what the model did to keep them equal, and what AMD's
device-metrics-exporter wrote that was not priced as it stands (pipeline/amd.py).

Both read the scope the report built (rpt_rows): the GPU-hours its rows touch, so a project report checks the GPUs
its jobs used in the hours they used them, and the all-projects report every GPU-hour of the window (the temp
table rpt_gpu_hours, rpt_gpu_hours.sql). The SQL is in sql/rpt_gpu_*.sql.
"""

from __future__ import annotations

import duckdb

from ..db import run_sql
from .fmt import num
from .query import inline, one, rows
from .types import AmdExporter, CounterDifference, Gaps, GpuCounters
from .window import Window

MAX_LISTED = 20          # GPU-hours listed one by one in data quality; the count and energy cover all of them
J_PER_KWH = 3.6e6


def gaps(con: duckdb.DuckDBPyConnection, w: Window) -> Gaps:
    """Telemetry gaps of the scope's GPUs, per GPU: the gaps of all its series (energy, idle, each job's; any source)
    merged into one when they overlap, clipped to the window. `restarts`: of those, how many ended in a counter
    restart (the energy before it is in no counter)."""
    r = one(con, "rpt_gpu_gaps", {"start": w.start, "end": w.end})
    return Gaps(count=int(r["gaps"]), hours=float(r["hours"]), restarts=int(r["restarts"]))


def counters(con: duckdb.DuckDBPyConnection, w: Window, *, fleet: bool) -> GpuCounters:
    """The scope's GPU-hours checked against their hardware counters (fct_gpu_hour), and what the model did to keep
    them equal: energy no job or idle counter accounted for (residual), job and idle counters that counted beyond
    the GPU's (excess, after a counter stepped back), and a second source's energy for the same time (unpriced)."""
    run_sql(con, "rpt_gpu_hours", {"fleet": fleet, "start": w.start, "end": w.end})
    c = one(con, "rpt_gpu_counters")
    differences = rows(con, "rpt_gpu_differences", {"max_listed": MAX_LISTED})
    stepped = one(con, "rpt_gpu_stepped_back")["gpus"]
    residual = one(con, "rpt_gpu_residual_jobs")
    return GpuCounters(
        gpu_hours=int(c["gpu_hours"]), counter_kwh=c["counter_j"] / J_PER_KWH, priced_kwh=c["priced_j"] / J_PER_KWH,
        residual_kwh=c["residual_j"] / J_PER_KWH, residual_jobs=int(residual["jobs"]),
        residual_to_jobs_kwh=residual["energy_j"] / J_PER_KWH,
        excess_kwh=c["excess_j"] / J_PER_KWH, stepped_back_gpus=int(stepped),
        unpriced_kwh=c["unpriced_j"] / J_PER_KWH, two_source_gpus=int(c["two_source_gpus"]),
        difference_gpu_hours=int(c["difference_hours"]), difference_kwh=c["difference_j"] / J_PER_KWH,
        differences=tuple(CounterDifference(hour=d["hour_ts"].isoformat().replace("+00:00", "Z"), cluster=d["cluster"],
                                            hostname=d["hostname"], gpu=d["gpu"], uuid=d["uuid"],
                                            counter_kwh=(d["counter_j"] or 0.0) / J_PER_KWH,
                                            priced_kwh=d["priced_j"] / J_PER_KWH, cause=d["cause"])
                          for d in differences),
    )


def amd_exporter(con: duckdb.DuckDBPyConnection, w: Window, *, fleet: bool) -> AmdExporter | None:
    """The scope's AMD device-metrics-exporter lines not priced as they stand: secondary partitions, and samples that
    were no reading (sql/rpt_amd_exporter.sql). None where the database holds no series of that source."""
    if not inline(con, "SELECT 1 AS amd FROM series WHERE source = 'amd' LIMIT 1"):
        return None
    r = one(con, "rpt_amd_exporter", {"start": w.start, "end": w.end, "fleet": fleet})
    return AmdExporter(**{k: int(v) for k, v in r.items()})


def amd_warnings(a: AmdExporter | None) -> list[str]:
    """The data-quality warning of AMD energy counters that read 0 (none when there were none)."""
    if a is None or not a.unread_energy_gpus:
        return []
    missing = (f"; in {a.unread_power_gpu_hours:,} of those GPU-hours every power gauge read 0 too: energy is missing"
               if a.unread_power_gpu_hours else "")
    return [f"the energy counters of {a.unread_energy_gpus} AMD GPUs read 0 in {a.unread_energy_gpu_hours:,} GPU-hours "
            "(device-metrics-exporter before v1.4.0 writes a field the platform does not support as 0): not a "
            f"reading, not priced as 0 J; those GPUs are priced from their power gauges where these read{missing}"]


def warnings(gap: Gaps, c: GpuCounters, amd: bool = False) -> list[str]:
    """The data-quality lines these checks add (none when everything balanced and nothing was adjusted); `amd`:
    the database holds AMD device-metrics-exporter series (the two-source advice names that source too)."""
    out = []
    if c.difference_gpu_hours:
        shown = "; ".join(f"{d.hour} {d.hostname} GPU {d.gpu}: {num(d.priced_kwh)} kWh priced, "
                          f"counter {num(d.counter_kwh)} kWh ({d.cause})" for d in c.differences[:3])
        out.append(f"in {c.difference_gpu_hours:,} GPU-hours the priced energy differs from the GPU's hardware "
                   f"energy counter ({num(c.difference_kwh)} kWh in all): {shown}; please report it")
    if c.residual_kwh > 0:
        out.append(f"{num(c.residual_kwh)} kWh the GPUs' energy counters measured was in no job or idle counter "
                   "(job series that expired while Prometheus was not scraping): "
                   f"{num(c.residual_to_jobs_kwh)} kWh attributed to {c.residual_jobs} jobs the ledger had on "
                   "those nodes, the rest unallocated; keep Prometheus outages shorter than the exporter's "
                   "--job-retention")
    if c.excess_kwh > 0 or c.stepped_back_gpus:
        out.append(f"counters of {c.stepped_back_gpus} GPUs stepped back (an exporter restarted from a "
                   "--state-file saved before its last scraped values): not a restart from 0; the "
                   f"{num(c.excess_kwh)} kWh their job and idle counters booked again was not priced; a "
                   "--state-interval equal to the poll interval avoids it")
    if c.two_source_gpus:
        out.append(f"{c.two_source_gpus} GPUs are reported by two sources (e.g. the wattprint exporter and "
                   "dcgm-exporter): each interval is priced from one, by preference (wattprint exporter, then "
                   f"dcgm-exporter, then a power gauge); {num(c.unpriced_kwh)} kWh the other measured for the same "
                   "time was not priced; set ingest.metrics.dcgm.enabled: false to stop reading it"
                   + (" (ingest.metrics.amd.enabled: false for AMD's device-metrics-exporter)" if amd else ""))
    if gap.restarts:
        out.append(f"{gap.restarts} of the telemetry gaps ended in a counter restart (an exporter restarted "
                   "without --state-file while it was not scraped): the energy used between the last sample and "
                   "the restart is in no counter and missing from these figures")
    return out
