-- The scope's jobs by the energy of the GPUs they held while idle (rpt_held_idle.sql for the columns), the most first,
-- at most $top, each with its own GPU energy in the window (rpt_rows) that the held-idle energy is a part of.
-- Parameters: as rpt_held_idle.sql, and $top.
WITH h AS (
    SELECT * FROM fct_job_gpu_held_idle_hour
    WHERE hour_ts >= $start AND hour_ts < $end
      AND ($project IS NULL OR project = $project)
      AND (len(CAST($phases AS VARCHAR[])) = 0 OR list_contains(CAST($phases AS VARCHAR[]), phase))
),
j AS (
    SELECT cluster, job_id, coalesce(project, '') AS project, phase, coalesce(max(user_name), '') AS user_name,
           sum(held_idle_energy_j) AS energy_j,
           sum(emissions_g(held_idle_energy_j, intensity_g_per_kwh, CASE WHEN $with_pue THEN pue ELSE 1.0 END))
               AS emissions_g,
           sum(held_idle_seconds) AS held_idle_s,
           count(DISTINCT gpu_key) AS gpus
    FROM h
    GROUP BY cluster, job_id, project, phase
    HAVING sum(held_idle_energy_j) > 0 OR sum(held_idle_seconds) > 0
),
own AS (
    SELECT cluster, job_id, sum(energy_j) AS gpu_j FROM rpt_rows WHERE kind = 'gpu' GROUP BY ALL
)
SELECT j.cluster, j.job_id, j.project, j.phase, j.user_name, j.energy_j, j.emissions_g, j.held_idle_s, j.gpus,
       coalesce(o.gpu_j, 0) AS gpu_j
FROM j LEFT JOIN own o USING (cluster, job_id)
ORDER BY j.energy_j DESC, j.held_idle_s DESC, j.cluster, j.job_id
LIMIT $top
