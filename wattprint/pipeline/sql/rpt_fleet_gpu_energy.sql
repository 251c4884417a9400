-- The fleet's GPU energy in the window [$start, $end) (every row of fct_job_gpu_hour: jobs and idle), and of it:
-- idle energy no job took a share of (no job ran in that cluster-hour, or the idle policy is not pro-rata:
-- $pro_rata false), and the energy of jobs not in the ledger.
WITH f AS (SELECT * FROM fct_job_gpu_hour WHERE hour_ts >= $start AND hour_ts < $end),
ch AS (SELECT cluster, hour_ts, coalesce(sum(gpu_seconds) FILTER (WHERE job_id IS NOT NULL), 0) AS job_s
       FROM f GROUP BY ALL)
SELECT coalesce(sum(energy_j), 0) AS fleet_j,
       coalesce(sum(energy_j) FILTER (WHERE f.job_id IS NULL AND (ch.job_s = 0 OR NOT $pro_rata)), 0)
           AS unapportioned_j,
       coalesce(sum(energy_j) FILTER (WHERE f.job_id IS NOT NULL AND NOT f.in_ledger), 0) AS not_in_ledger_j
FROM f
JOIN ch USING (cluster, hour_ts)
