-- Who used each joule, per stream and UTC hour.
--  exporter:    wattprint's per-job counters (the exporter already split each GPU interval exactly; likewise each
--               CPU socket's package and DRAM energy, by the jobs' CPU time)
--  idle:        wattprint's idle counters (no job on the GPU; host energy no job's CPU time accounts for)
--  gpu_label:   GPU-level energy (dcgm, power) whose series names the job (hpc_job / pod label)
--  node_share:  GPU-level energy without a label: the ledger's jobs on that node in that interval get
--               gpus_of_job / gpus_on_node of it (a job with unknown GPU count holds the whole node;
--               over-subscribed nodes are scaled down so energy is never created)
--  unallocated: the rest of GPU-level energy, kept visible
-- Intervals are cut at allocation changes and at hour boundaries, pro rata by time.
-- gpu_seconds: the time each piece covers, times the job's share of the GPU (node_share) or the unshared rest
-- (unallocated); summed over a node's GPUs a job's gpu_seconds are its allocated GPUs x time. (On host streams
-- it is just the time the piece covers; fct_job_cpu_hour does not use it.)
--
-- How it stays close to one GROUP BY over energy_intervals: the only per-interval work is cutting at
-- hours and, for unlabelled GPU-level intervals in the few hours where an allocation starts or ends
-- inside the hour (cut_hours), cutting at those changes. Energy is summed per (stream, hour, quality,
-- label) first; everything else (streams, the allocation segment of a whole hour, the jobs sharing a
-- segment) is joined onto those hourly sums, not onto the intervals.
CREATE OR REPLACE TEMP TABLE hourly_pieces AS
WITH
priced AS (
    -- the streams priced here; gpu_level streams' unlabelled energy is shared by allocation
    SELECT stream_id, source, kind, cluster, hostname, job_id, source <> 'wattprint' AS gpu_level
    FROM streams
    WHERE (source = 'wattprint' AND kind IN ('job', 'idle', 'cpu_job', 'cpu_idle'))
       OR (source <> 'wattprint' AND kind IN ('gpu', 'gpu_power'))
),
node_gpus AS (
    SELECT cluster, hostname AS node, count(DISTINCT (gpu, uuid)) AS n
    FROM streams WHERE source <> 'wattprint' AND kind IN ('gpu', 'gpu_power')
    GROUP BY ALL
),
alloc AS (
    SELECT n.cluster, n.node, j.job_id, j.start_ts,
           coalesce(j.end_ts, 'infinity'::TIMESTAMPTZ) AS end_ts,
           coalesce(n.gpus, g.n) AS gpus, g.n AS node_gpus
    FROM job_nodes n
    JOIN jobs j USING (cluster, job_id)
    JOIN node_gpus g ON g.cluster = n.cluster AND g.node = n.node
    WHERE coalesce(n.gpus, g.n) > 0
),
bounds AS (
    SELECT cluster, node, start_ts AS t FROM alloc
    UNION SELECT cluster, node, end_ts FROM alloc
    UNION SELECT DISTINCT cluster, node, '-infinity'::TIMESTAMPTZ FROM alloc
),
-- allocation segments: between two consecutive allocation changes of a node; together they tile its time line
segs AS (
    SELECT cluster, node, t AS seg_start,
           coalesce(lead(t) OVER (PARTITION BY cluster, node ORDER BY t), 'infinity'::TIMESTAMPTZ) AS seg_end
    FROM bounds
),
seg_jobs AS (
    SELECT s.cluster, s.node, s.seg_start, s.seg_end, a.job_id,
           a.gpus / greatest(a.node_gpus, sum(a.gpus) OVER (PARTITION BY s.cluster, s.node, s.seg_start)) AS share
    FROM segs s
    JOIN alloc a ON a.cluster = s.cluster AND a.node = s.node
                AND a.start_ts <= s.seg_start AND a.end_ts >= s.seg_end
),
seg_totals AS (
    SELECT cluster, node, seg_start, sum(share) AS shared FROM seg_jobs GROUP BY ALL
),
-- (GPU stream, hour) where an allocation changes strictly inside the hour, with every segment overlapping
-- that hour: such a segment starts or ends inside it. Everywhere else one segment covers the whole hour.
cut_hours AS (
    SELECT p.stream_id, c.hour_idx, c.seg_start, c.s_us, c.e_us
    FROM (
        SELECT cluster, node, seg_start, epoch_us(seg_start) // 3600000000 AS hour_idx,
               epoch_us(seg_start) AS s_us,
               CASE WHEN isfinite(seg_end) THEN epoch_us(seg_end) ELSE 9223372036854775807 END AS e_us
        FROM segs WHERE isfinite(seg_start) AND epoch_us(seg_start) % 3600000000 <> 0
        UNION
        SELECT cluster, node, seg_start, epoch_us(seg_end) // 3600000000,
               CASE WHEN isfinite(seg_start) THEN epoch_us(seg_start) ELSE -9223372036854775807 END,
               epoch_us(seg_end)
        FROM segs WHERE isfinite(seg_end) AND epoch_us(seg_end) % 3600000000 <> 0
    ) c
    JOIN priced p ON p.gpu_level AND p.cluster = c.cluster AND p.hostname = c.node
),
-- the intervals, read twice: every one for the hourly sums, and again the unlabelled ones for cut_pieces
-- when there are cut hours at all (a guard DuckDB checks before scanning: wattprint-only data skips it)
us AS NOT MATERIALIZED (
    SELECT false AS for_cuts, stream_id, quality, label_job, energy_j,
           epoch_us(start_ts) AS s_us, epoch_us(end_ts) AS e_us
    FROM energy_intervals
    UNION ALL
    SELECT true, stream_id, quality, label_job, energy_j, epoch_us(start_ts), epoch_us(end_ts)
    FROM energy_intervals
    WHERE label_job IS NULL AND EXISTS (SELECT 1 FROM cut_hours)
),
-- every interval cut at UTC hours: its first (nearly always its only) hour, then any further hours
hour_pieces AS NOT MATERIALIZED (
    SELECT for_cuts, stream_id, quality, label_job, s_us // 3600000000 AS hour_idx,
           s_us AS p_s, least(e_us, (s_us // 3600000000 + 1) * 3600000000) AS p_e,
           CASE WHEN s_us // 3600000000 = (e_us - 1) // 3600000000 THEN energy_j
                ELSE energy_j * (least(e_us, (s_us // 3600000000 + 1) * 3600000000) - s_us) / (e_us - s_us)
           END AS energy_j
    FROM us
    UNION ALL
    SELECT for_cuts, stream_id, quality, label_job, h, h * 3600000000, least(e_us, (h + 1) * 3600000000),
           energy_j * (least(e_us, (h + 1) * 3600000000) - h * 3600000000) / (e_us - s_us)
    FROM (SELECT *, unnest(range(s_us // 3600000000 + 1, (e_us - 1) // 3600000000 + 1)) AS h
          FROM us WHERE s_us // 3600000000 <> (e_us - 1) // 3600000000)
),
-- energy per (stream, hour, quality, label). Unlabelled and labelled are summed apart: nearly all energy is
-- unlabelled, and a label column that is all NULL lets DuckDB skip the labelled pass from its statistics.
hourly AS (
    SELECT stream_id, hour_idx, quality, NULL::VARCHAR AS label_job, sum(energy_j) AS energy_j,
           sum(p_e - p_s) AS dur_us
    FROM hour_pieces WHERE NOT for_cuts AND label_job IS NULL
    GROUP BY ALL
    UNION ALL
    SELECT stream_id, hour_idx, quality, label_job, sum(energy_j), sum(p_e - p_s)
    FROM hour_pieces WHERE NOT for_cuts AND label_job IS NOT NULL
    GROUP BY ALL
),
-- unlabelled GPU-level energy in cut hours, cut again at the segments (pro rata by time)
cut_pieces AS (
    SELECT h.stream_id, h.hour_idx, h.quality, c.seg_start,
           sum(h.energy_j * (least(h.p_e, c.e_us) - greatest(h.p_s, c.s_us)) / (h.p_e - h.p_s)) AS energy_j,
           sum(least(h.p_e, c.e_us) - greatest(h.p_s, c.s_us)) AS dur_us
    FROM hour_pieces h
    JOIN cut_hours c ON c.stream_id = h.stream_id AND c.hour_idx = h.hour_idx AND c.s_us < h.p_e AND c.e_us > h.p_s
    WHERE h.for_cuts
    GROUP BY ALL
),
direct AS (
    SELECT h.stream_id, h.hour_idx, h.quality, h.energy_j, h.dur_us,
           CASE WHEN p.gpu_level THEN h.label_job ELSE p.job_id END AS job_id,
           CASE WHEN p.gpu_level THEN 'gpu_label' WHEN p.job_id IS NULL THEN 'idle' ELSE 'exporter' END AS attribution
    FROM hourly h JOIN priced p USING (stream_id)
    WHERE NOT p.gpu_level OR h.label_job IS NOT NULL
),
-- unlabelled GPU-level energy per (stream, hour, segment): a whole hour lies in the node's last segment
-- starting at or before it (none: the node had no allocation); cut hours come from cut_pieces
shared AS (
    SELECT h.stream_id, h.hour_idx, h.quality, h.energy_j, h.dur_us, p.cluster, p.hostname, s.seg_start
    FROM (SELECT * FROM hourly WHERE label_job IS NULL
          AND NOT EXISTS (SELECT 1 FROM cut_hours c WHERE c.stream_id = hourly.stream_id
                                                      AND c.hour_idx = hourly.hour_idx)) h
    JOIN priced p ON p.stream_id = h.stream_id AND p.gpu_level
    ASOF LEFT JOIN segs s ON s.cluster = p.cluster AND s.node = p.hostname
                         AND s.seg_start <= to_timestamp(h.hour_idx * 3600)
    UNION ALL
    SELECT c.stream_id, c.hour_idx, c.quality, c.energy_j, c.dur_us, p.cluster, p.hostname, c.seg_start
    FROM cut_pieces c JOIN priced p USING (stream_id)
),
pieces AS (
    SELECT stream_id, hour_idx, job_id, attribution, quality, energy_j, dur_us FROM direct
    UNION ALL
    SELECT u.stream_id, u.hour_idx, j.job_id, 'node_share', u.quality, u.energy_j * j.share, u.dur_us * j.share
    FROM shared u
    JOIN seg_jobs j ON j.cluster = u.cluster AND j.node = u.hostname AND j.seg_start = u.seg_start
    UNION ALL
    SELECT u.stream_id, u.hour_idx, NULL, 'unallocated', u.quality, u.energy_j * (1 - coalesce(t.shared, 0)),
           u.dur_us * (1 - coalesce(t.shared, 0))
    FROM shared u
    LEFT JOIN seg_totals t ON t.cluster = u.cluster AND t.node = u.hostname AND t.seg_start = u.seg_start
    WHERE coalesce(t.shared, 0) < 1
)
SELECT stream_id, hour_idx, job_id, attribution, quality, sum(energy_j) AS energy_j,
       sum(dur_us) / 1e6 AS gpu_seconds
FROM pieces
GROUP BY ALL
