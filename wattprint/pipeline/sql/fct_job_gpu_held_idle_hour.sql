-- Held but idle GPUs and the equal-share fallback, per (job, GPU, UTC hour) (gpu_held_idle_hour.sql), with the
-- ledger's facts and the price of the job's own GPU energy in that hour: the same cluster PUE and zone intensity as
-- its fct_job_gpu_hour rows, through the one emissions formula (emissions_g, macros.sql).
--  held_idle_energy_j     the part of the job's energy (already in fct_job_gpu_hour.energy_j, never added to it)
--                         from poll intervals in which the GPU or MIG instance it held was idle
--  held_idle_seconds      the held time of those intervals
--  equal_share_seconds    the held time of intervals in which it shared the GPU and the split fell back to equal
--                         shares (no per-process utilisation)
--  held_idle_emissions_g  held_idle_energy_j priced with PUE, as fct_job_gpu_hour.emissions_g
-- Only rows where one of the three is not 0; for the hours this build makes ($out_lo_h, $out_hi_h).
SELECT to_timestamp(h.hour_idx * 3600) AS hour_ts,
       st.cluster, st.hostname, st.gpu, st.uuid, st.job_id,
       j.project,
       coalesce(j.phase, 'unclassified') AS phase,
       j.user_name,
       c.region,
       c.zone,
       r.quality AS intensity_quality,
       j.job_id IS NOT NULL AS in_ledger,
       h.held_idle_j AS held_idle_energy_j,
       h.held_idle_s AS held_idle_seconds,
       h.equal_share_s AS equal_share_seconds,
       coalesce(c.pue, 1.0) AS pue,
       r.g_per_kwh AS intensity_g_per_kwh,
       emissions_g(h.held_idle_j, r.g_per_kwh, coalesce(c.pue, 1.0)) AS held_idle_emissions_g,
       st.model AS gpu_model,
       st.gpu_key
FROM gpu_held_idle_hour h
JOIN streams st USING (stream_id)
LEFT JOIN clusters c ON c.cluster = st.cluster
LEFT JOIN jobs j ON j.cluster = st.cluster AND j.job_id = st.job_id
JOIN int_intensity_resolved r ON r.zone = coalesce(c.zone, '') AND r.hour_idx = h.hour_idx
WHERE h.hour_idx >= $out_lo_h AND h.hour_idx < $out_hi_h
-- stored in a fixed order: the reports add these rows up in it, so equal results give equal reports
ORDER BY ALL
