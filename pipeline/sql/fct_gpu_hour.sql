-- The reconciliation, per physical GPU (gpu_key) and UTC hour: the energy the results price for it (the rows of
-- fct_job_gpu_hour, whatever the source and attribution: jobs, idle, unallocated, residual) against its hardware
-- energy counter in that hour (the wattprint exporter's GPU counter, else the dcgm-exporter counter for the time
-- it is the source priced). A difference beyond rounding means a joule priced twice or not at all; the reports
-- list every such hour in their data quality and the all-projects report's fleet reconciliation.
--  sources     the sources priced in the hour, best first (stg_gpu_coverage.sql: wattprint, dcgm, power)
--  counter_j   the hardware counter; NULL when a power gauge is priced in that hour (integrated, nothing exact to
--              compare) or no counter measured the GPU
--  residual_j  of the priced energy, what the counter measured and no job or idle counter accounted for
--              (int_balance_pieces.sql: shared by the ledger, or unallocated)
--  excess_j    what the exporter's job and idle counters counted beyond the GPU's counter, not priced
--  unpriced_j  what a less preferred source measured of the GPU while a better one did: not priced
-- The identity columns are those of the preferred source's series.
INSERT INTO fct_gpu_hour (hour_ts, cluster, hostname, gpu, uuid, gpu_key, sources, counter_j, priced_j, residual_j,
                          excess_j, unpriced_j, diff_j, cause)
WITH
gs AS (
    SELECT stream_id, source, kind, cluster, hostname, gpu, uuid, gpu_key,
           CASE WHEN source = 'wattprint' THEN 1 WHEN kind = 'gpu' THEN 2 ELSE 3 END AS rank
    FROM streams
    WHERE gpu_key IS NOT NULL AND kind IN ('gpu', 'gpu_power', 'job', 'idle')
),
ident AS (
    SELECT DISTINCT cluster, hostname, gpu, uuid, gpu_key FROM gs
),
priced AS (
    SELECT i.gpu_key, epoch(f.hour_ts)::BIGINT // 3600 AS hour_idx, sum(f.energy_j) AS priced_j
    FROM fct_job_gpu_hour f
    JOIN ident i USING (cluster, hostname, gpu, uuid)
    GROUP BY ALL
),
counter AS (
    -- wattprint: the GPU counter as hourly_pieces cut it; dcgm: its energy in the time it is priced
    SELECT gs.gpu_key, h.hour_idx, sum(h.energy_j) AS counter_j
    FROM hourly_pieces h JOIN gs USING (stream_id)
    WHERE gs.kind = 'gpu' AND (h.attribution = 'counter_total'
                               OR (gs.rank = 2 AND h.attribution NOT IN ('counter_total', 'unpriced')))
    GROUP BY ALL
),
parts AS (
    SELECT gs.gpu_key, h.hour_idx,
           coalesce(sum(h.energy_j) FILTER (WHERE h.attribution = 'unpriced'), 0) AS unpriced_j,
           bool_or(gs.rank = 1) FILTER (WHERE h.attribution NOT IN ('counter_total', 'unpriced')) AS by_wattprint,
           bool_or(gs.rank = 2) FILTER (WHERE h.attribution NOT IN ('counter_total', 'unpriced')) AS by_dcgm,
           bool_or(gs.rank = 3) FILTER (WHERE h.attribution NOT IN ('counter_total', 'unpriced')) AS by_power
    FROM hourly_pieces h JOIN gs USING (stream_id)
    GROUP BY ALL
),
balance AS (
    SELECT gs.gpu_key, b.hour_idx,
           coalesce(sum(b.energy_j) FILTER (WHERE b.attribution IN ('residual_share', 'unallocated')), 0) AS residual_j,
           coalesce(-sum(b.energy_j) FILTER (WHERE b.attribution IN ('exporter', 'idle')), 0) AS excess_j
    FROM balance_pieces b JOIN gs USING (stream_id)
    GROUP BY ALL
),
keyed AS (
    SELECT gpu_key, hour_idx FROM priced UNION SELECT gpu_key, hour_idx FROM counter
    UNION SELECT gpu_key, hour_idx FROM parts
),
names AS (
    SELECT gpu_key, arg_min((cluster, hostname, gpu, uuid), (rank, cluster, hostname, gpu, uuid)) AS id
    FROM gs GROUP BY ALL
),
r AS (
    SELECT k.gpu_key, k.hour_idx, n.id,
           concat_ws(',', CASE WHEN p.by_wattprint THEN 'wattprint' END, CASE WHEN p.by_dcgm THEN 'dcgm' END,
                     CASE WHEN p.by_power THEN 'power' END) AS sources,
           CASE WHEN NOT coalesce(p.by_power, false) THEN c.counter_j END AS counter_j,
           coalesce(pr.priced_j, 0) AS priced_j, coalesce(b.residual_j, 0) AS residual_j,
           coalesce(b.excess_j, 0) AS excess_j, coalesce(p.unpriced_j, 0) AS unpriced_j
    FROM keyed k
    JOIN names n USING (gpu_key)
    LEFT JOIN priced pr USING (gpu_key, hour_idx)
    LEFT JOIN counter c USING (gpu_key, hour_idx)
    LEFT JOIN parts p USING (gpu_key, hour_idx)
    LEFT JOIN balance b USING (gpu_key, hour_idx)
)
SELECT to_timestamp(hour_idx * 3600), id[1], id[2], id[3], id[4], gpu_key, sources, counter_j, priced_j, residual_j,
       excess_j, unpriced_j, priced_j - counter_j,
       CASE WHEN counter_j IS NULL OR abs(priced_j - counter_j) <= 1.0 + 1e-6 * abs(counter_j) THEN NULL
            WHEN priced_j > counter_j THEN 'priced more than the GPU energy counter measured'
            ELSE 'priced less than the GPU energy counter measured' END
FROM r
