-- Every hourly piece (GPU and host streams alike) with its ledger facts, cluster, intensity and price: the one
-- place the emissions formula lives. fct_job_gpu_hour and fct_job_cpu_hour select their streams from it.
--   emissions_g = energy_j / 3.6e6 kWh/J * PUE * intensity (gCO2eq/kWh)
-- The pieces are int_hourly_pieces' priced ones (not the exporter's totals, not what a less preferred source measured
-- of a GPU another one measured) with int_balance_pieces' corrections added (summed in when there are any: nearly
-- always there are none), less a job's rows that hold neither energy nor time (its series kept after it left the
-- GPU).
WITH b AS (
    SELECT stream_id, hour_idx, job_id, attribution, quality, energy_j, gpu_seconds
    FROM int_hourly_pieces WHERE attribution NOT IN ('counter_total', 'unpriced')
),
h AS (
    SELECT * FROM b WHERE NOT EXISTS (SELECT 1 FROM int_balance_pieces)
    UNION ALL
    SELECT stream_id, hour_idx, job_id, attribution, quality, exact_sum(energy_j), exact_sum(gpu_seconds)
    FROM (SELECT * FROM b UNION ALL BY NAME SELECT * FROM int_balance_pieces)
    WHERE EXISTS (SELECT 1 FROM int_balance_pieces)
    GROUP BY ALL
)
SELECT to_timestamp(h.hour_idx * 3600) AS hour_ts,
       st.kind, st.cluster, st.hostname, st.gpu, st.uuid, st.gpu_key, st.socket, st.domain, st.model,
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
       emissions_g(h.energy_j, r.g_per_kwh, coalesce(c.pue, 1.0)) AS emissions_g,
       h.gpu_seconds
FROM h
JOIN streams st USING (stream_id)
LEFT JOIN clusters c ON c.cluster = st.cluster
LEFT JOIN jobs j ON j.cluster = st.cluster AND j.job_id = h.job_id
JOIN int_intensity_resolved r ON r.zone = coalesce(c.zone, '') AND r.hour_idx = h.hour_idx
WHERE h.job_id IS NULL OR h.energy_j <> 0 OR h.gpu_seconds <> 0
