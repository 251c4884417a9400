-- The GPU-hours of rpt_gpu_hours whose priced energy differs from the GPU's counter, the largest first, at most
-- $max_listed of them (the count and energy in rpt_gpu_counters.sql cover all).
SELECT hour_ts, cluster, hostname, gpu, uuid, counter_j, priced_j, cause
FROM fct_gpu_hour
WHERE cause IS NOT NULL AND (gpu_key, hour_ts) IN (SELECT gpu_key, hour_ts FROM rpt_gpu_hours)
ORDER BY abs(diff_j) DESC, hour_ts, cluster, hostname, gpu
LIMIT $max_listed
