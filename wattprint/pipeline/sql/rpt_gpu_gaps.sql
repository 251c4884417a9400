-- Telemetry gaps of the scope's GPUs, per GPU: the gaps of all its series (energy, idle, each job's; any source)
-- that touch an hour of the scope's GPU rows, clipped to the window [$start, $end), merged into one when they
-- overlap (islands). The count, their GPU-hours, and how many ended in a counter restart.
WITH g AS (
    SELECT g.gpu_key, greatest(g.start_ts, $start::TIMESTAMPTZ) AS s, least(g.end_ts, $end::TIMESTAMPTZ) AS e,
           g.cause = 'counter_restart' AS restart
    FROM gpu_gaps() g                          -- rpt_telemetry.sql: the built gaps and the closed months' kept ones
    WHERE g.start_ts < $end AND g.end_ts > $start
      AND EXISTS (SELECT 1 FROM rpt_rows r WHERE r.kind = 'gpu' AND r.gpu_key = g.gpu_key
                  AND r.hour_ts < g.end_ts AND r.hour_ts + INTERVAL 1 HOUR > g.start_ts)),
m AS (SELECT *, CASE WHEN s <= max(e) OVER (PARTITION BY gpu_key ORDER BY s, e ROWS BETWEEN UNBOUNDED
                PRECEDING AND 1 PRECEDING) THEN 0 ELSE 1 END AS starts FROM g),
i AS (SELECT gpu_key, min(s) AS s, max(e) AS e, bool_or(restart) AS restart
      FROM (SELECT *, sum(starts) OVER (PARTITION BY gpu_key ORDER BY s, e) AS island FROM m)
      GROUP BY gpu_key, island)
SELECT count(*) AS gaps, coalesce(sum(epoch(e) - epoch(s)), 0) / 3600.0 AS hours,
       count(*) FILTER (WHERE restart) AS restarts
FROM i
