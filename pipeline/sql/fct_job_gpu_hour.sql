-- GPU energy and emissions per (job, GPU, UTC hour), with the facts and flags that explain each number.
INSERT INTO fct_job_gpu_hour (hour_ts, cluster, hostname, gpu, uuid, job_id, project, phase, user_name, region,
                              zone, attribution, energy_quality, intensity_quality, in_ledger, energy_j, pue,
                              intensity_g_per_kwh, emissions_g, gpu_model, gpu_seconds)
SELECT to_timestamp(h.hour_idx * 3600) AS hour_ts,
       st.cluster, st.hostname, st.gpu, st.uuid,
       h.job_id,
       j.project,
       CASE WHEN h.job_id IS NULL THEN NULL ELSE coalesce(j.phase, 'unclassified') END AS phase,
       j.user_name,
       c.region,
       c.zone,
       h.attribution,
       h.quality AS energy_quality,
       r.quality AS intensity_quality,
       j.job_id IS NOT NULL AS in_ledger,
       h.energy_j,
       coalesce(c.pue, 1.0) AS pue,
       r.g_per_kwh AS intensity_g_per_kwh,
       h.energy_j / 3600000.0 * coalesce(c.pue, 1.0) * r.g_per_kwh AS emissions_g,
       st.model AS gpu_model,
       h.gpu_seconds
FROM hourly_pieces h
JOIN streams st USING (stream_id)
LEFT JOIN clusters c ON c.cluster = st.cluster
LEFT JOIN jobs j ON j.cluster = st.cluster AND j.job_id = h.job_id
JOIN intensity_resolved r ON r.zone = coalesce(c.zone, '') AND r.hour_idx = h.hour_idx
WHERE st.kind IN ('job', 'idle', 'gpu', 'gpu_power')    -- the host's (CPU) streams go to fct_job_cpu_hour
