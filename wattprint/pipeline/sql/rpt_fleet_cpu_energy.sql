-- The fleet's host (RAPL) energy in the window [$start, $end) (every row of fct_job_cpu_hour: jobs and host idle),
-- and of it: host idle energy no job took a share of (no job had CPU time in that cluster-hour, or the idle policy
-- is not pro-rata: $pro_rata false), and the energy of jobs not in the ledger.
WITH c AS (SELECT * FROM fct_job_cpu_hour WHERE hour_ts >= $start AND hour_ts < $end),
t AS (SELECT cluster, hour_ts, sum(cpu_seconds) AS job_s FROM fct_job_cpu_time_hour
      WHERE hour_ts >= $start AND hour_ts < $end GROUP BY ALL)
SELECT coalesce(sum(energy_j), 0) AS fleet_j,
       coalesce(sum(energy_j) FILTER (WHERE c.job_id IS NULL AND (coalesce(t.job_s, 0) = 0 OR NOT $pro_rata)), 0)
           AS unapportioned_j,
       coalesce(sum(energy_j) FILTER (WHERE c.job_id IS NOT NULL AND NOT c.in_ledger), 0) AS not_in_ledger_j
FROM c
LEFT JOIN t USING (cluster, hour_ts)
