-- Per cluster, straight from fct_job_cpu_hour in the window [$start, $end) (every job and host idle): distinct CPU
-- sockets, host energy (all, jobs', idle), its emissions before PUE and with PUE, and the PUE, region and zone.
SELECT c.cluster, count(DISTINCT (c.hostname, c.socket)) AS sockets, sum(c.energy_j) AS energy_j,
       coalesce(sum(c.energy_j) FILTER (WHERE c.job_id IS NOT NULL), 0) AS job_j,
       coalesce(sum(c.energy_j) FILTER (WHERE c.job_id IS NULL), 0) AS idle_j,
       sum(emissions_g(c.energy_j, c.intensity_g_per_kwh, 1.0)) AS grams_before_pue, sum(c.emissions_g) AS grams,
       max(c.pue) AS pue, any_value(c.region) AS region, any_value(c.zone) AS zone
FROM fct_job_cpu_hour c
WHERE c.hour_ts >= $start AND c.hour_ts < $end
GROUP BY 1
