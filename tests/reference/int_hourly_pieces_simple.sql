-- Reference for tests only: the first, straightforward version of pipeline/sql/int_hourly_pieces.sql
-- (range join of every interval with every allocation segment). The shipped version is rewritten for speed;
-- tests/test_model_reference.py checks that both give the same hourly_pieces on random data.
-- Who used each joule, per stream and UTC hour.
--  exporter:    wattprint's per-job counters (the exporter already split each GPU interval exactly; likewise each
--               CPU socket's package and DRAM energy)
--  idle:        wattprint's idle counters (no job on the GPU; host energy no job's CPU time accounts for)
--  gpu_label:   GPU-level energy (dcgm, power) whose series names the job (hpc_job / pod label)
--  node_share:  GPU-level energy without a label: the ledger's jobs on that node in that interval get
--               gpus_of_job / gpus_on_node of it (a job with unknown GPU count holds the whole node;
--               over-subscribed nodes are scaled down so energy is never created)
--  unallocated: the rest of GPU-level energy, kept visible
-- Intervals are cut at allocation changes and at hour boundaries, pro rata by time.
CREATE OR REPLACE TEMP TABLE hourly_pieces AS
WITH
gpu_level AS (
    SELECT i.*, st.cluster, st.hostname
    FROM energy_intervals i JOIN streams st USING (stream_id)
    WHERE st.source <> 'wattprint' AND st.kind IN ('gpu', 'gpu_power')
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
unlabelled AS (
    SELECT g.stream_id, g.quality, g.energy_j, g.start_ts, g.end_ts, g.cluster, g.hostname,
           s.seg_start,
           greatest(g.start_ts, s.seg_start) AS p_start,
           least(g.end_ts, s.seg_end) AS p_end
    FROM gpu_level g
    LEFT JOIN segs s ON s.cluster = g.cluster AND s.node = g.hostname
                    AND s.seg_start < g.end_ts AND s.seg_end > g.start_ts
    WHERE g.label_job IS NULL
),
unlabelled_pieces AS (
    SELECT stream_id, quality, p_start AS start_ts, p_end AS end_ts,
           CASE WHEN seg_start IS NULL THEN energy_j
                ELSE energy_j * (epoch(p_end) - epoch(p_start)) / (epoch(end_ts) - epoch(start_ts)) END AS energy_j,
           cluster, hostname, seg_start
    FROM unlabelled
),
pieces AS (
    SELECT stream_id, start_ts, end_ts, energy_j, quality, job_id,
           CASE WHEN job_id IS NULL THEN 'idle' ELSE 'exporter' END AS attribution, 1.0 AS frac
    FROM (SELECT i.*, st.job_id FROM energy_intervals i JOIN streams st USING (stream_id)
          WHERE st.source = 'wattprint' AND st.kind IN ('job', 'idle', 'cpu_job', 'cpu_idle'))
    UNION ALL
    SELECT stream_id, start_ts, end_ts, energy_j, quality, label_job, 'gpu_label', 1.0
    FROM gpu_level WHERE label_job IS NOT NULL
    UNION ALL
    SELECT u.stream_id, u.start_ts, u.end_ts, u.energy_j * j.share, u.quality, j.job_id, 'node_share', j.share
    FROM unlabelled_pieces u
    JOIN seg_jobs j ON j.cluster = u.cluster AND j.node = u.hostname AND j.seg_start = u.seg_start
    UNION ALL
    SELECT u.stream_id, u.start_ts, u.end_ts, u.energy_j * (1 - coalesce(t.shared, 0)), u.quality, NULL, 'unallocated',
           1 - coalesce(t.shared, 0)
    FROM unlabelled_pieces u
    LEFT JOIN seg_totals t ON t.cluster = u.cluster AND t.node = u.hostname AND t.seg_start = u.seg_start
    WHERE coalesce(t.shared, 0) < 1
),
us AS (
    SELECT *, epoch_us(start_ts) AS s_us, epoch_us(end_ts) AS e_us FROM pieces
),
split AS (
    -- the common case: the piece lies inside one hour
    SELECT stream_id, s_us // 3600000000 AS hour_idx, job_id, attribution, quality, energy_j,
           (e_us - s_us) * frac AS dur_us
    FROM us WHERE s_us // 3600000000 = (e_us - 1) // 3600000000
    UNION ALL
    SELECT stream_id, h AS hour_idx, job_id, attribution, quality,
           energy_j * (least(e_us, (h + 1) * 3600000000) - greatest(s_us, h * 3600000000)) / (e_us - s_us),
           (least(e_us, (h + 1) * 3600000000) - greatest(s_us, h * 3600000000)) * frac
    FROM (SELECT *, unnest(range(s_us // 3600000000, (e_us - 1) // 3600000000 + 1)) AS h
          FROM us WHERE s_us // 3600000000 <> (e_us - 1) // 3600000000)
)
SELECT stream_id, hour_idx, job_id, attribution, quality, sum(energy_j) AS energy_j,
       sum(dur_us) / 1e6 AS gpu_seconds
FROM split
GROUP BY ALL
