-- Where the exporter's split streams (jobs + idle of a GPU; of a CPU socket's RAPL domain) do not add up to its
-- total counter (the GPU's hardware counter, the socket's), the total is right and the split is corrected here, so
-- every joule the total counted is priced once:
--  residual   the total counted more than the split streams: a job's series expired while Prometheus was not
--             scraping (the exporter keeps a finished job's series for --job-retention only), so its last energy,
--             or all of it for a job that ran inside the outage, is in no sample. GPU: shared among the ledger's
--             jobs on that node at the time (attribution 'residual_share'), over the time they held it and by
--             their GPUs on the node: the jobs the exporter showed on this GPU, else those it never showed on the
--             node; never one whose own counter on this GPU reads at the interval's end (it has its energy). With
--             none, 'unallocated'. Host: 'unallocated' (host energy no job counter accounts for).
--  excess     the split streams counted more than the total: after an exporter restored older totals from its
--             --state-file, the energy since that save is booked again to the jobs found at the first poll (or to
--             idle) while the counters that stepped back count nothing (stg_counter_intervals.sql). The split
--             intervals ending in that total interval are scaled down to it, pro rata.
-- Only hours where an exporter total and its split disagree by more than rounding (1 J + 1 ppm of the hour) are
-- looked at, interval by interval (1/2 J + 1 ppm): on consistent data this reads no interval (the EXISTS guards
-- let DuckDB skip the scans of energy_intervals before it builds a hash table on them).
-- Rows have int_hourly_pieces' columns: energy_j is added to (residual) or taken from (excess, negative) what
-- int_hourly_pieces has, and int_priced_pieces.sql sums both.
WITH
totals AS (
    SELECT stream_id AS parent_id, hour_idx, exact_sum(energy_j) AS total_j
    FROM int_hourly_pieces WHERE attribution = 'counter_total'
    GROUP BY ALL
),
splits AS (
    SELECT st.parent_id, h.hour_idx, exact_sum(h.energy_j) AS split_j
    FROM int_hourly_pieces h
    JOIN streams st USING (stream_id)
    WHERE h.attribution IN ('exporter', 'idle') AND st.parent_id IS NOT NULL
    GROUP BY ALL
),
off_hours AS (
    SELECT t.parent_id, t.hour_idx
    FROM totals t LEFT JOIN splits s USING (parent_id, hour_idx)
    WHERE abs(t.total_j - coalesce(s.split_j, 0)) > 1.0 + 1e-6 * abs(t.total_j)
),
-- the total's intervals that touch those hours or the hour before (see `moved`), each once
p AS (
    SELECT DISTINCT i.stream_id AS parent_id, i.start_ts, i.end_ts, i.energy_j AS total_j, i.quality
    FROM energy_intervals i
    JOIN off_hours o ON o.parent_id = i.stream_id
     AND epoch_us(i.start_ts) < (o.hour_idx + 1) * 3600000000 AND epoch_us(i.end_ts) > (o.hour_idx - 1) * 3600000000
),
-- the split intervals that end inside each of them
s AS (
    SELECT p.parent_id, p.end_ts AS p_end, i.stream_id, i.start_ts, i.end_ts, i.energy_j, i.quality
    FROM p
    JOIN streams st ON st.parent_id = p.parent_id AND st.kind IN ('job', 'idle', 'cpu_job', 'cpu_idle')
    JOIN (SELECT * FROM energy_intervals WHERE EXISTS (SELECT 1 FROM off_hours)) i
      ON i.stream_id = st.stream_id AND i.end_ts > p.start_ts AND i.end_ts <= p.end_ts
),
bal AS (
    SELECT p.parent_id, p.start_ts, p.end_ts, p.total_j, p.quality, coalesce(exact_sum(s.energy_j), 0) AS split_j
    FROM p LEFT JOIN s ON s.parent_id = p.parent_id AND s.p_end = p.end_ts
    GROUP BY ALL
),
-- excess: each split interval scaled down to the total, the difference cut at hours
excess AS (
    SELECT s.stream_id, st.job_id, s.quality, epoch_us(s.start_ts) AS s_us, epoch_us(s.end_ts) AS e_us,
           s.energy_j * (b.total_j / b.split_j - 1) AS delta_j
    FROM bal b
    JOIN s ON s.parent_id = b.parent_id AND s.p_end = b.end_ts
    JOIN streams st ON st.stream_id = s.stream_id
    WHERE b.split_j - b.total_j > 0.5 + 1e-6 * b.total_j AND s.energy_j > 0
),
res0 AS (
    SELECT b.parent_id, b.quality, b.total_j - b.split_j AS residual_j, b.start_ts, b.end_ts,
           st.kind, st.cluster, st.node, st.gpu_key
    FROM bal b JOIN streams st ON st.stream_id = b.parent_id
    WHERE b.total_j - b.split_j > 0.5 + 1e-6 * b.total_j
),
-- a GPU's energy counter never stands still while it is powered: intervals in which it did not move before the
-- residual are Prometheus repeating the last sample (its 5-minute lookback) or an exporter that stopped being
-- read, so the residual's energy may have been used in them too: its span starts at the last reading that moved
-- (looked for back to the start of the hour before)
moved AS (
    SELECT parent_id, end_ts FROM p WHERE total_j > 0
),
res AS (
    SELECT r.parent_id, r.quality, r.residual_j, r.kind, r.cluster, r.node, r.gpu_key, r.end_ts,
           coalesce(m.end_ts, r.start_ts) AS start_ts,
           epoch_us(coalesce(m.end_ts, r.start_ts)) AS s_us, epoch_us(r.end_ts) AS e_us
    FROM res0 r ASOF LEFT JOIN moved m ON m.parent_id = r.parent_id AND m.end_ts <= r.start_ts
),
-- the jobs the exporter showed on each node, and on which GPUs
seen AS (
    SELECT DISTINCT cluster, node, job_id, gpu_key FROM streams WHERE source = 'wattprint' AND kind = 'job'
),
-- job counters of the residual's GPU that read at the end of its interval
counted AS (
    SELECT DISTINCT r.parent_id, r.end_ts, st.job_id
    FROM res r
    JOIN streams st ON st.parent_id = r.parent_id AND st.kind = 'job'
    JOIN (SELECT * FROM energy_intervals WHERE EXISTS (SELECT 1 FROM res0)) i
      ON i.stream_id = st.stream_id AND i.end_ts = r.end_ts
),
node_size AS (
    SELECT cluster, node, count(DISTINCT gpu_key) AS n FROM streams WHERE gpu_key IS NOT NULL GROUP BY ALL
),
-- candidates: (residual, segment overlapping it, job), weighted by the job's GPUs on the node. Jobs the exporter
-- showed on this GPU come first (tier 1); jobs it never showed on the node (they ran inside the outage) only when
-- no tier-1 job overlaps the interval; jobs it showed only on the node's other GPUs never.
cand AS (
    SELECT r.parent_id, r.end_ts, r.quality, r.residual_j, a.job_id,
           greatest(r.s_us, epoch_us(a.seg_start)) AS o_s,
           least(r.e_us, CASE WHEN isfinite(a.seg_end) THEN epoch_us(a.seg_end) ELSE r.e_us END) AS o_e,
           coalesce(a.gpus, ns.n, 1) AS w,
           CASE WHEN EXISTS (SELECT 1 FROM seen x WHERE x.cluster = r.cluster AND x.node = r.node
                                                    AND x.job_id = a.job_id AND x.gpu_key = r.gpu_key) THEN 1
                WHEN NOT EXISTS (SELECT 1 FROM seen x WHERE x.cluster = r.cluster AND x.node = r.node
                                                        AND x.job_id = a.job_id) THEN 2 END AS tier
    FROM res r
    JOIN int_node_allocations a ON a.cluster = r.cluster AND a.node = r.node AND a.job_id IS NOT NULL
                         AND a.seg_start < r.end_ts AND a.seg_end > r.start_ts
    LEFT JOIN node_size ns ON ns.cluster = r.cluster AND ns.node = r.node
    WHERE r.kind = 'gpu'
      AND NOT EXISTS (SELECT 1 FROM counted c WHERE c.parent_id = r.parent_id AND c.end_ts = r.end_ts
                                                AND c.job_id = a.job_id)
    QUALIFY tier IS NOT NULL AND o_e > o_s
        AND tier = min(tier) FILTER (WHERE tier IS NOT NULL AND o_e > o_s) OVER (PARTITION BY r.parent_id, r.end_ts)
),
cand_k AS (
    SELECT *, count(*) OVER (PARTITION BY parent_id, end_ts, o_s) AS k FROM cand
),
cand_w AS (
    SELECT *,
           (o_e - o_s) / CAST(sum(exact((o_e - o_s) / k)) OVER (PARTITION BY parent_id, end_ts) AS DOUBLE) AS time_part,
           w / sum(w) OVER (PARTITION BY parent_id, end_ts, o_s) AS job_part
    FROM cand_k
),
spans AS (
    -- (stream, job, attribution, quality, span, energy, GPU-seconds)
    SELECT stream_id, job_id, CASE WHEN job_id IS NULL THEN 'idle' ELSE 'exporter' END AS attribution, quality,
           s_us, e_us, delta_j AS energy_j, 0.0 AS held_us
    FROM excess
    UNION ALL
    SELECT parent_id, job_id, 'residual_share', quality, o_s, o_e, residual_j * time_part * job_part,
           (o_e - o_s) * job_part
    FROM cand_w
    UNION ALL
    SELECT r.parent_id, NULL, 'unallocated', r.quality, r.s_us, r.e_us, r.residual_j, 0.0
    FROM res r
    WHERE NOT EXISTS (SELECT 1 FROM cand_w c WHERE c.parent_id = r.parent_id AND c.end_ts = r.end_ts)
)
SELECT stream_id, h AS hour_idx, job_id, attribution, quality,
       exact_sum(energy_j * hour_share(s_us, e_us, h)) AS energy_j,
       exact_sum(held_us * hour_share(s_us, e_us, h)) / 1e6 AS gpu_seconds
FROM (SELECT *, unnest(hours_of(s_us, e_us)) AS h FROM spans)
GROUP BY ALL
