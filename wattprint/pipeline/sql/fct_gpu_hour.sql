-- The reconciliation, per physical GPU (gpu_key) and UTC hour: the energy the results price for it (the rows of
-- fct_job_gpu_hour, whatever the source and attribution: jobs, idle, unallocated, residual) against its hardware
-- energy counter in that hour (the wattprint exporter's GPU counter, else the dcgm-exporter counter for the time
-- it is the source priced). A difference beyond rounding means a joule priced twice or not at all; the reports
-- list every such hour in their data quality and the all-projects report's fleet reconciliation.
--  sources     the sources priced in the hour, best first (gpu_coverage.sql: wattprint, then dcgm or amd, power)
--  counter_j   the hardware counter; NULL when a power gauge is priced in that hour (integrated, nothing exact to
--              compare) or no counter measured the GPU
--  residual_j  of the priced energy, what the counter measured and no job or idle counter accounted for
--              (int_balance_pieces.sql: shared by the ledger, or unallocated)
--  excess_j    what the exporter's job and idle counters counted beyond the GPU's counter, not priced
--  unpriced_j  what a less preferred source measured of the GPU while a better one did: not priced
-- The identity columns are those of the preferred source's series. One pass: every input row is tagged with what it
-- adds to, and summed per GPU-hour.
WITH
gs AS (
    SELECT stream_id, source, kind, gpu_key,
           CASE WHEN source = 'wattprint' THEN 1 WHEN kind = 'gpu' THEN 2 ELSE 3 END AS rank
    FROM streams
    WHERE gpu_key IS NOT NULL AND kind IN ('gpu', 'gpu_power', 'job', 'idle')
),
tagged AS (
    SELECT gpu_key, epoch(hour_ts)::BIGINT // 3600 AS hour_idx, energy_j AS priced_j, 0.0 AS counter_j,
           0.0 AS unpriced_j, 0.0 AS residual_j, 0.0 AS excess_j, NULL::INTEGER AS rank, NULL::VARCHAR AS source
    FROM fct_job_gpu_hour
    WHERE hour_ts >= to_timestamp($out_lo_h::BIGINT * 3600) AND hour_ts < to_timestamp($out_hi_h::BIGINT * 3600)    -- this build's
    UNION ALL
    -- wattprint: the GPU counter as int_hourly_pieces cut it; dcgm: its energy in the time it is priced
    SELECT gs.gpu_key, h.hour_idx, 0.0,
           CASE WHEN gs.kind = 'gpu' AND (h.attribution = 'counter_total'
                                          OR (gs.rank = 2 AND h.attribution <> 'unpriced')) THEN h.energy_j
                ELSE 0.0 END,
           CASE WHEN h.attribution = 'unpriced' THEN h.energy_j ELSE 0.0 END, 0.0, 0.0,
           CASE WHEN h.attribution NOT IN ('counter_total', 'unpriced') THEN gs.rank END, gs.source
    FROM int_hourly_pieces h JOIN gs USING (stream_id)
    WHERE h.hour_idx >= $out_lo_h AND h.hour_idx < $out_hi_h
    UNION ALL
    SELECT gs.gpu_key, b.hour_idx, 0.0, 0.0, 0.0,
           CASE WHEN b.attribution IN ('residual_share', 'unallocated') THEN b.energy_j ELSE 0.0 END,
           CASE WHEN b.attribution IN ('exporter', 'idle') THEN -b.energy_j ELSE 0.0 END, NULL, NULL
    FROM int_balance_pieces b JOIN gs USING (stream_id)
    WHERE b.hour_idx >= $out_lo_h AND b.hour_idx < $out_hi_h
),
r AS (
    SELECT gpu_key, hour_idx, exact_sum(priced_j) AS priced_j, exact_sum(counter_j) AS counter_j,
           exact_sum(unpriced_j) AS unpriced_j, exact_sum(residual_j) AS residual_j, exact_sum(excess_j) AS excess_j,
           bool_or(rank = 1) AS by_wattprint, bool_or(rank = 2 AND source = 'dcgm') AS by_dcgm,
           bool_or(rank = 2 AND source = 'amd') AS by_amd, bool_or(rank = 3) AS by_power,
           bool_or(counter_j <> 0) AS counted
    FROM tagged
    GROUP BY gpu_key, hour_idx
),
names AS (
    SELECT st.gpu_key, arg_min((st.cluster, st.hostname, st.gpu, st.uuid), (g.rank, st.cluster, st.hostname, st.gpu,
                                                                          st.uuid)) AS id
    FROM streams st JOIN gs g USING (stream_id)
    GROUP BY ALL
),
c AS (
    SELECT r.*, n.id,
           CASE WHEN coalesce(r.counted, false) AND NOT coalesce(r.by_power, false) THEN r.counter_j END AS counter
    FROM r JOIN names n USING (gpu_key)
)
SELECT to_timestamp(hour_idx * 3600) AS hour_ts, id[1] AS cluster, id[2] AS hostname, id[3] AS gpu, id[4] AS uuid,
       gpu_key,
       concat_ws(',', CASE WHEN by_wattprint THEN 'wattprint' END, CASE WHEN by_dcgm THEN 'dcgm' END,
                 CASE WHEN by_amd THEN 'amd' END, CASE WHEN by_power THEN 'power' END) AS sources,
       counter::DOUBLE AS counter_j, priced_j::DOUBLE AS priced_j, residual_j::DOUBLE AS residual_j,
       excess_j::DOUBLE AS excess_j, unpriced_j::DOUBLE AS unpriced_j, (priced_j - counter)::DOUBLE AS diff_j,
       CASE WHEN counter IS NULL OR abs(priced_j - counter) <= 1.0 + 1e-6 * abs(counter) THEN NULL
            WHEN priced_j > counter THEN 'priced more than the GPU energy counter measured'
            ELSE 'priced less than the GPU energy counter measured' END AS cause
FROM c
-- stored in a fixed order: the reports add these rows up in it, so equal results give equal reports
ORDER BY ALL
