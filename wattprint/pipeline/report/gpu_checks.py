"""The data-quality checks a report makes of its GPUs: telemetry gaps per GPU, and every GPU-hour's priced energy
against the GPU's hardware energy counter (fct_gpu_hour), with what the model did to keep them equal.

Both read the scope the report built (rpt_rows): the GPU-hours its rows touch, so a project report checks the GPUs
its jobs used in the hours they used them, and the all-projects report every GPU-hour of the window.
"""

from __future__ import annotations

import duckdb

from .fmt import num
from .types import CounterDifference, Gaps, GpuCounters
from .window import Window

MAX_LISTED = 20          # GPU-hours listed one by one in data quality; the count and energy cover all of them
J_PER_KWH = 3.6e6

# GPU-hours in scope of a project report: (gpu_key, hour_ts) pairs of the scope's GPU rows
_SCOPED = "SELECT DISTINCT gpu_key, hour_ts FROM rpt_rows WHERE kind = 'gpu' AND gpu_key IS NOT NULL"
# ... of the all-projects report: every GPU-hour of the window (idle ones too)
_WINDOW = "SELECT gpu_key, hour_ts FROM fct_gpu_hour WHERE hour_ts >= $start AND hour_ts < $end"


def gaps(con: duckdb.DuckDBPyConnection, w: Window) -> Gaps:
    """Telemetry gaps of the scope's GPUs, per GPU: the gaps of all its series (energy, idle, each job's; any source)
    merged into one when they overlap, clipped to the window. `restarts`: of those, how many ended in a counter
    restart (the energy before it is in no counter)."""
    count, hours, restarts = con.execute(
        "WITH g AS ("
        "  SELECT s.gpu_key, greatest(g.start_ts, ?::TIMESTAMPTZ) AS s, least(g.end_ts, ?::TIMESTAMPTZ) AS e,"
        "         g.cause = 'counter_restart' AS restart"
        "  FROM energy_gaps g JOIN streams s USING (stream_id)"
        "  WHERE s.gpu_key IS NOT NULL AND g.start_ts < ? AND g.end_ts > ?"
        "    AND EXISTS (SELECT 1 FROM rpt_rows r WHERE r.kind = 'gpu' AND r.gpu_key = s.gpu_key"
        "                AND r.hour_ts < g.end_ts AND r.hour_ts + INTERVAL 1 HOUR > g.start_ts)),"
        " m AS (SELECT *, CASE WHEN s <= max(e) OVER (PARTITION BY gpu_key ORDER BY s, e ROWS BETWEEN UNBOUNDED"
        "                 PRECEDING AND 1 PRECEDING) THEN 0 ELSE 1 END AS starts FROM g),"
        " i AS (SELECT gpu_key, min(s) AS s, max(e) AS e, bool_or(restart) AS restart"
        "       FROM (SELECT *, sum(starts) OVER (PARTITION BY gpu_key ORDER BY s, e) AS island FROM m)"
        "       GROUP BY gpu_key, island)"
        " SELECT count(*), coalesce(sum(epoch(e) - epoch(s)), 0) / 3600.0, count(*) FILTER (WHERE restart) FROM i",
        [w.start, w.end, w.end, w.start]).fetchall()[0]
    return Gaps(count=int(count), hours=float(hours), restarts=int(restarts))


def counters(con: duckdb.DuckDBPyConnection, w: Window, *, fleet: bool) -> GpuCounters:
    """The scope's GPU-hours checked against their hardware counters (fct_gpu_hour), and what the model did to keep
    them equal: energy no job or idle counter accounted for (residual), job and idle counters that counted beyond
    the GPU's (excess, after a counter stepped back), and a second source's energy for the same time (unpriced)."""
    scoped = _WINDOW if fleet else _SCOPED
    p = {"start": w.start, "end": w.end} if fleet else {}
    (hours, counter_j, priced_j, residual_j, excess_j, unpriced_j, two_sources, diff_hours, diff_j) = con.execute(
        f"WITH f AS (SELECT * FROM fct_gpu_hour WHERE (gpu_key, hour_ts) IN ({scoped}))"
        " SELECT count(*) FILTER (WHERE counter_j IS NOT NULL), coalesce(sum(counter_j), 0),"
        " coalesce(sum(priced_j) FILTER (WHERE counter_j IS NOT NULL), 0), coalesce(sum(residual_j), 0),"
        " coalesce(sum(excess_j), 0), coalesce(sum(unpriced_j), 0),"
        " count(DISTINCT gpu_key) FILTER (WHERE unpriced_j > 0),"
        " count(*) FILTER (WHERE cause IS NOT NULL), coalesce(sum(abs(diff_j)) FILTER (WHERE cause IS NOT NULL), 0)"
        " FROM f", p).fetchall()[0]
    rows = con.execute(
        f"SELECT hour_ts, cluster, hostname, gpu, uuid, counter_j, priced_j, cause FROM fct_gpu_hour"
        f" WHERE cause IS NOT NULL AND (gpu_key, hour_ts) IN ({scoped})"
        f" ORDER BY abs(diff_j) DESC, hour_ts, cluster, hostname, gpu LIMIT {MAX_LISTED}", p).fetchall()
    stepped = con.execute(
        "SELECT count(DISTINCT s.gpu_key) FROM energy_intervals i JOIN streams s USING (stream_id)"
        f" WHERE i.quality = 'counter_stepback' AND s.gpu_key IS NOT NULL AND (s.gpu_key, to_timestamp("
        f"epoch(i.end_ts)::BIGINT // 3600 * 3600)) IN ({scoped})", p).fetchall()[0][0]
    residual_jobs = con.execute(
        "SELECT count(DISTINCT (cluster, job_id)), coalesce(sum(energy_j) FILTER (WHERE job_id IS NOT NULL), 0)"
        " FROM fct_job_gpu_hour f WHERE attribution = 'residual_share'"
        f" AND (gpu_key, hour_ts) IN ({scoped})", p).fetchall()[0]
    return GpuCounters(
        gpu_hours=int(hours), counter_kwh=counter_j / J_PER_KWH, priced_kwh=priced_j / J_PER_KWH,
        residual_kwh=residual_j / J_PER_KWH, residual_jobs=int(residual_jobs[0]),
        residual_to_jobs_kwh=residual_jobs[1] / J_PER_KWH,
        excess_kwh=excess_j / J_PER_KWH, stepped_back_gpus=int(stepped),
        unpriced_kwh=unpriced_j / J_PER_KWH, two_source_gpus=int(two_sources),
        difference_gpu_hours=int(diff_hours), difference_kwh=diff_j / J_PER_KWH,
        differences=tuple(CounterDifference(hour=h.isoformat().replace("+00:00", "Z"), cluster=c, hostname=host, gpu=g,
                                            uuid=u, counter_kwh=(cj or 0.0) / J_PER_KWH, priced_kwh=pj / J_PER_KWH,
                                            cause=cause) for h, c, host, g, u, cj, pj, cause in rows),
    )


def warnings(gap: Gaps, c: GpuCounters) -> list[str]:
    """The data-quality lines these checks add (none when everything balanced and nothing was adjusted)."""
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
                   "time was not priced; set ingest.metrics.dcgm.enabled: false to stop reading it")
    if gap.restarts:
        out.append(f"{gap.restarts} of the telemetry gaps ended in a counter restart (an exporter restarted "
                   "without --state-file while it was not scraped): the energy used between the last sample and "
                   "the restart is in no counter and missing from these figures")
    return out
