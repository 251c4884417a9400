-- The GPU-hours of rpt_gpu_hours against their hardware counters (fct_gpu_hour): how many have a counter, what
-- the counters measured and what was priced for them, the residual (measured by no job or idle counter), the
-- excess (job and idle counters beyond the GPU's after a counter stepped back), a second source's unpriced energy
-- and its GPUs, and the GPU-hours whose priced energy differs from the counter, with the difference.
WITH f AS (SELECT * FROM fct_gpu_hour WHERE (gpu_key, hour_ts) IN (SELECT gpu_key, hour_ts FROM rpt_gpu_hours))
SELECT count(*) FILTER (WHERE counter_j IS NOT NULL) AS gpu_hours, coalesce(sum(counter_j), 0) AS counter_j,
       coalesce(sum(priced_j) FILTER (WHERE counter_j IS NOT NULL), 0) AS priced_j,
       coalesce(sum(residual_j), 0) AS residual_j, coalesce(sum(excess_j), 0) AS excess_j,
       coalesce(sum(unpriced_j), 0) AS unpriced_j,
       count(DISTINCT gpu_key) FILTER (WHERE unpriced_j > 0) AS two_source_gpus,
       count(*) FILTER (WHERE cause IS NOT NULL) AS difference_hours,
       coalesce(sum(abs(diff_j)) FILTER (WHERE cause IS NOT NULL), 0) AS difference_j
FROM f
