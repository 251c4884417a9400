-- The first and last hour with measured job energy (GPU or host) of project $project, or of every project when it
-- is NULL: what an empty report's error points to.
SELECT min(hour_ts) AS first_hour, max(hour_ts) AS last_hour
FROM (SELECT hour_ts, job_id, project FROM fct_job_gpu_hour
      UNION ALL SELECT hour_ts, job_id, project FROM fct_job_cpu_hour)
WHERE job_id IS NOT NULL AND ($project IS NULL OR project = $project)
