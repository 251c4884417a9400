-- The (cluster, GPU model) pairs whose embodied rate a report needs: those of the jobs' GPU rows from $start (the
-- window before the report's: the all-projects report compares with it) to $end.
SELECT DISTINCT cluster, coalesce(gpu_model, '') AS gpu_model
FROM fct_job_gpu_hour
WHERE hour_ts >= $start AND hour_ts < $end AND job_id IS NOT NULL
ORDER BY ALL
