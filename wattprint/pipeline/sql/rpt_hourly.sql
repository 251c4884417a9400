-- The scope's GPU and host power per (hour, cluster, zone) (mean watts: joules / 3600 s), and the intensity its
-- energy was priced with (energy-weighted; the zone's intensity of the hour where the scope had no energy).
SELECT hour_ts, cluster, coalesce(zone, '') AS zone, sum(energy_j) / 3600.0 AS power_w,
       sum(cpu_j) / 3600.0 AS cpu_power_w,
       CASE WHEN sum(energy_j + cpu_j) > 0 THEN sum(gpu_g + cpu_g) / sum(energy_j + cpu_j) * 3600000.0
            ELSE coalesce(max(intensity_g_per_kwh), 0) END AS intensity_g_per_kwh
FROM rpt_rows
WHERE kind IN ('gpu', 'cpu')
GROUP BY 1, 2, 3
ORDER BY 1, 2
