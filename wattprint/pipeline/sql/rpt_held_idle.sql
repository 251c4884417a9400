-- Held but idle GPUs in the report's scope (fct_job_gpu_held_idle_hour: the part of the jobs' own GPU energy from
-- intervals in which the GPU or MIG instance they held was idle), with the scope's measured GPU energy it is a part
-- of (rpt_rows). Emissions: each row's energy at its hour's intensity, times its cluster's PUE when the pue layer is
-- in the headline ($with_pue), through the one formula (emissions_g).
-- Parameters: $start, $end, $project (NULL: every project), $phases (empty: every phase), $with_pue.
WITH h AS (
    SELECT * FROM fct_job_gpu_held_idle_hour
    WHERE hour_ts >= $start AND hour_ts < $end
      AND ($project IS NULL OR project = $project)
      AND (len(CAST($phases AS VARCHAR[])) = 0 OR list_contains(CAST($phases AS VARCHAR[]), phase))
)
SELECT coalesce(sum(held_idle_energy_j), 0) AS energy_j,
       coalesce(sum(emissions_g(held_idle_energy_j, intensity_g_per_kwh, CASE WHEN $with_pue THEN pue ELSE 1.0 END)),
                0) AS emissions_g,
       coalesce(sum(held_idle_seconds), 0) AS held_idle_s,
       count(DISTINCT (cluster, job_id)) FILTER (WHERE held_idle_energy_j > 0 OR held_idle_seconds > 0) AS jobs,
       (SELECT coalesce(sum(energy_j), 0) FROM rpt_rows WHERE kind = 'gpu') AS gpu_j
FROM h
