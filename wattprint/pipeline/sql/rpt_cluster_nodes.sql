-- Per cluster, straight from fct_job_node_hour in the window [$start, $end) (every job and node idle): the node
-- residual attributed (fct_node_hour.sql: the BMC's node energy less the GPU boards and RAPL, 0 where it read less),
-- the jobs' part and node idle.
SELECT cluster, CAST(sum(energy_j) AS DOUBLE) AS energy_j,
       CAST(coalesce(sum(energy_j) FILTER (WHERE job_id IS NOT NULL), 0) AS DOUBLE) AS job_j,
       CAST(coalesce(sum(energy_j) FILTER (WHERE job_id IS NULL), 0) AS DOUBLE) AS idle_j
FROM fct_job_node_hour
WHERE hour_ts >= $start AND hour_ts < $end
GROUP BY 1
