-- GPU energy and emissions per (job, GPU, UTC hour), with the facts and flags that explain each number
-- (priced in int_priced_pieces.sql).
SELECT hour_ts, cluster, hostname, gpu, uuid, job_id, project, phase, user_name, region, zone, attribution,
       energy_quality, intensity_quality, in_ledger, energy_j, pue, intensity_g_per_kwh, emissions_g,
       model AS gpu_model, gpu_seconds, gpu_key
FROM int_priced_pieces
WHERE kind IN ('job', 'idle', 'gpu', 'gpu_power')    -- the host's (CPU) streams go to fct_job_cpu_hour
  AND hour_ts >= to_timestamp($out_lo_h::BIGINT * 3600) AND hour_ts < to_timestamp($out_hi_h::BIGINT * 3600)    -- this build's hours
-- stored in a fixed order: the reports add these rows up in it, so equal results give equal reports
ORDER BY ALL
