-- Per cluster, straight from fct_job_gpu_hour in the window [$start, $end) (every job, in the ledger or not, and
-- idle): distinct GPUs, GPU energy (all, jobs', idle), its emissions before PUE (for the intensity) and with PUE,
-- and the cluster's PUE, region and zone.
SELECT f.cluster, count(DISTINCT (f.hostname, f.gpu, f.uuid)) AS gpus, sum(f.energy_j) AS energy_j,
       coalesce(sum(f.energy_j) FILTER (WHERE f.job_id IS NOT NULL), 0) AS job_j,
       coalesce(sum(f.energy_j) FILTER (WHERE f.job_id IS NULL), 0) AS idle_j,
       sum(emissions_g(f.energy_j, f.intensity_g_per_kwh, 1.0)) AS grams_before_pue, sum(f.emissions_g) AS grams,
       max(f.pue) AS pue, any_value(f.region) AS region, any_value(f.zone) AS zone
FROM fct_job_gpu_hour f
WHERE f.hour_ts >= $start AND f.hour_ts < $end
GROUP BY 1
