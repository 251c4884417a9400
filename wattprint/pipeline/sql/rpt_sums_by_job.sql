-- Every column of layers.Sums (joules, grams and seconds of each accounting layer), summed over the scope's rows
-- (rpt_rows, see rpt_scope.sql); the rpt_sums*.sql files differ only in what they group by.
-- Here: per job (the all-projects report's top jobs; ranked in Python by the headline, which depends on the layers).
SELECT
    cluster,
    job_id,
    coalesce(project, '') AS project,
    phase,
    coalesce(any_value(user_name), '') AS user_name,
    sum(energy_j) AS energy_j, sum(gpu_g) AS gpu_g, sum(idle_j) AS idle_j, sum(idle_g) AS idle_g,
    sum(pue_gpu_j) AS pue_gpu_j, sum(pue_gpu_g) AS pue_gpu_g, sum(pue_idle_j) AS pue_idle_j,
    sum(pue_idle_g) AS pue_idle_g, sum(emb_g) AS emb_g, sum(gpu_seconds) AS gpu_s, sum(cpu_j) AS cpu_j,
    sum(cpu_g) AS cpu_g, sum(cpu_j) FILTER (WHERE domain = 'package') AS cpu_pkg_j,
    sum(cpu_j) FILTER (WHERE domain = 'dram') AS cpu_dram_j, sum(cpu_seconds) AS cpu_s,
    sum(cpu_idle_j) AS cpu_idle_j, sum(cpu_idle_g) AS cpu_idle_g, sum(pue_cpu_j) AS pue_cpu_j,
    sum(pue_cpu_g) AS pue_cpu_g, sum(pue_cpu_idle_j) AS pue_cpu_idle_j, sum(pue_cpu_idle_g) AS pue_cpu_idle_g
FROM rpt_rows
GROUP BY 1, 2, 3, 4
