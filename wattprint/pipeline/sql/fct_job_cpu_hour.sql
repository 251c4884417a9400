-- Host energy (CPU package and DRAM, from RAPL) and emissions per (job or host idle, socket, domain, UTC hour),
-- priced exactly like fct_job_gpu_hour (int_priced_pieces.sql): the exporter split each socket's energy among the
-- jobs by CPU time (attribution 'exporter') and booked the rest as host idle (attribution 'idle', job_id NULL);
-- energy the socket's counter saw and none of those counters did is 'unallocated' (int_balance_pieces.sql).
SELECT hour_ts, cluster, hostname, socket, domain, job_id, project, phase, user_name, region, zone, attribution,
       energy_quality, intensity_quality, in_ledger, energy_j, pue, intensity_g_per_kwh, emissions_g,
       model AS cpu_model
FROM int_priced_pieces
WHERE kind IN ('cpu_job', 'cpu_idle', 'cpu')    -- 'cpu': socket energy no job or idle counter accounts for
  AND hour_ts >= to_timestamp($out_lo_h::BIGINT * 3600) AND hour_ts < to_timestamp($out_hi_h::BIGINT * 3600)    -- this build's hours
-- stored in a fixed order: the reports add these rows up in it, so equal results give equal reports
ORDER BY ALL
