-- The residual (energy a GPU counter measured and no job or idle counter did) attributed to ledger jobs in the
-- GPU-hours of rpt_gpu_hours: how many jobs, and how much energy.
SELECT count(DISTINCT (cluster, job_id)) AS jobs,
       coalesce(sum(energy_j) FILTER (WHERE job_id IS NOT NULL), 0) AS energy_j
FROM fct_job_gpu_hour f
WHERE attribution = 'residual_share' AND (gpu_key, hour_ts) IN (SELECT gpu_key, hour_ts FROM rpt_gpu_hours)
