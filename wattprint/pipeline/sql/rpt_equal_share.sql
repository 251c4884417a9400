-- The equal-share fallback in the report's scope: the held time in which the scope's jobs shared their GPU (or MIG
-- instance) and the exporter split its energy equally for want of per-process utilisation
-- (fct_job_gpu_held_idle_hour.equal_share_seconds), against the scope's GPU time on shared GPU-hours: the jobs' own
-- GPU-seconds (rpt_rows) in the GPU-hours in which two or more jobs held the GPU by the exporter's counters. At hour
-- resolution two jobs one after the other in an hour count too (the hourly sums cannot tell them from two at once),
-- so this is an upper bound of the shared time, and the share a lower bound of the fallback's.
-- Parameters: $start, $end, $project (NULL: every project), $phases (empty: every phase).
WITH shared AS (
    SELECT gpu_key, hour_ts
    FROM fct_job_gpu_hour
    WHERE hour_ts >= $start AND hour_ts < $end AND job_id IS NOT NULL AND attribution = 'exporter'
      AND gpu_seconds > 0
    GROUP BY ALL
    HAVING count(DISTINCT job_id) > 1
)
SELECT (SELECT coalesce(sum(equal_share_seconds), 0) FROM fct_job_gpu_held_idle_hour
        WHERE hour_ts >= $start AND hour_ts < $end
          AND ($project IS NULL OR project = $project)
          AND (len(CAST($phases AS VARCHAR[])) = 0 OR list_contains(CAST($phases AS VARCHAR[]), phase)))
           AS equal_share_s,
       (SELECT coalesce(sum(r.gpu_seconds), 0) FROM rpt_rows r JOIN shared s USING (gpu_key, hour_ts)
        WHERE r.kind = 'gpu' AND r.attribution = 'exporter') AS shared_s
