-- Reference for tests only: a straightforward version of pipeline/sql/int_hourly_pieces.sql (range joins of every
-- interval with every allocation segment and every coverage island). The shipped version is written for speed;
-- tests/test_model_reference.py checks that both give the same int_hourly_pieces on random data. It computes the
-- allocation segments itself (not from int_node_allocations) and the node's GPUs per hour from stream_spans.
-- Who used each joule, per stream and UTC hour: see int_hourly_pieces.sql for the attributions.
WITH
st AS (
    SELECT *, source <> 'wattprint' AND kind IN ('gpu', 'gpu_power') AS gpu_level,
           source = 'wattprint' AND kind IN ('gpu', 'cpu') AS total,
           CASE WHEN source = 'wattprint' THEN 1 WHEN kind = 'gpu' THEN 2 ELSE 3 END AS rank
    FROM streams
    WHERE (source = 'wattprint' AND kind IN ('job', 'idle', 'gpu', 'cpu_job', 'cpu_idle', 'cpu'))
       OR (source <> 'wattprint' AND kind IN ('gpu', 'gpu_power'))
),
-- cut every GPU-level interval at the boundaries of the islands covering its GPU for its rank
cuts AS (
    SELECT i.stream_id, i.start_ts, i.end_ts, t
    FROM energy_intervals i JOIN st USING (stream_id)
    JOIN gpu_coverage c ON c.gpu_key = st.gpu_key AND c.below_rank = st.rank
    CROSS JOIN LATERAL (SELECT unnest([c.cov_start, c.cov_end]) AS t)
    WHERE st.gpu_level AND t > i.start_ts AND t < i.end_ts
),
points AS (
    SELECT stream_id, start_ts, end_ts, start_ts AS t FROM energy_intervals
    UNION SELECT stream_id, start_ts, end_ts, end_ts FROM energy_intervals
    UNION SELECT * FROM cuts
),
subs AS (
    SELECT stream_id, start_ts, end_ts, t AS s, lead(t) OVER (PARTITION BY stream_id, start_ts, end_ts ORDER BY t) AS e
    FROM points
),
iv AS (
    SELECT i.stream_id, i.quality, i.label_job, x.s AS start_ts, x.e AS end_ts,
           i.energy_j * (epoch(x.e) - epoch(x.s)) / (epoch(i.end_ts) - epoch(i.start_ts)) AS energy_j,
           EXISTS (SELECT 1 FROM gpu_coverage c JOIN st ON c.gpu_key = st.gpu_key AND c.below_rank = st.rank
                   WHERE st.stream_id = i.stream_id AND st.gpu_level AND c.cov_start <= x.s AND c.cov_end >= x.e)
               AS unpriced
    FROM energy_intervals i
    JOIN subs x ON x.stream_id = i.stream_id AND x.start_ts = i.start_ts AND x.end_ts = i.end_ts AND x.e IS NOT NULL
    WHERE i.energy_j > 0          -- an interval that counted nothing adds neither energy nor time
),
node_gpus AS (
    SELECT st2.cluster, st2.node, h AS hour_idx, count(DISTINCT st2.gpu_key) AS n
    FROM stream_spans sp JOIN streams st2 USING (stream_id),
         unnest(range(epoch_us(sp.start_ts) // 3600000000, (epoch_us(sp.end_ts) - 1) // 3600000000 + 1)) AS u(h)
    WHERE st2.kind IN ('gpu', 'gpu_power', 'idle')
    GROUP BY ALL
),
alloc AS (
    SELECT n.cluster, node_key(n.node) AS node, j.job_id, j.start_ts,
           coalesce(j.end_ts, 'infinity'::TIMESTAMPTZ) AS end_ts, max(n.gpus) AS gpus
    FROM job_nodes n
    JOIN jobs j USING (cluster, job_id)
    WHERE coalesce(n.gpus, 1) > 0 AND j.start_ts < coalesce(j.end_ts, 'infinity'::TIMESTAMPTZ)
    GROUP BY ALL
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
    SELECT s.cluster, s.node, s.seg_start, s.seg_end, a.job_id, a.gpus
    FROM segs s
    JOIN alloc a ON a.cluster = s.cluster AND a.node = s.node
                AND a.start_ts <= s.seg_start AND a.end_ts >= s.seg_end
),
-- every interval part cut at hours first, then (unlabelled GPU-level) at segments
hour_parts AS (
    SELECT iv.*, h,
           greatest(epoch_us(start_ts), h * 3600000000) AS p_s, least(epoch_us(end_ts), (h + 1) * 3600000000) AS p_e
    FROM iv, unnest(range(epoch_us(start_ts) // 3600000000, (epoch_us(end_ts) - 1) // 3600000000 + 1)) AS u(h)
),
parts AS (
    SELECT p.*, p.energy_j * (p.p_e - p.p_s) / (epoch_us(p.end_ts) - epoch_us(p.start_ts)) AS part_j
    FROM hour_parts p
),
unlabelled AS (
    SELECT p.stream_id, p.quality, p.h, p.part_j, p.p_s, p.p_e, st.cluster, st.node, s.seg_start,
           greatest(p.p_s, epoch_us(s.seg_start)) AS q_s,
           least(p.p_e, CASE WHEN isfinite(s.seg_end) THEN epoch_us(s.seg_end) ELSE p.p_e END) AS q_e
    FROM parts p JOIN st USING (stream_id)
    LEFT JOIN segs s ON s.cluster = st.cluster AND s.node = st.node
                    AND s.seg_start < to_timestamp(p.p_e / 1e6) AND s.seg_end > to_timestamp(p.p_s / 1e6)
    WHERE st.gpu_level AND p.label_job IS NULL AND NOT p.unpriced
),
unl AS (
    SELECT u.*, CASE WHEN u.seg_start IS NULL THEN u.part_j ELSE u.part_j * (u.q_e - u.q_s) / (u.p_e - u.p_s) END AS q_j,
           CASE WHEN u.seg_start IS NULL THEN u.p_e - u.p_s ELSE u.q_e - u.q_s END AS q_us,
           g.n
    FROM unlabelled u
    JOIN node_gpus g ON g.cluster = u.cluster AND g.node = u.node AND g.hour_idx = u.h
),
seg_sum AS (
    SELECT u.stream_id, u.h, u.seg_start, u.p_s, sum(coalesce(j.gpus, u.n)) AS held
    FROM unl u JOIN seg_jobs j ON j.cluster = u.cluster AND j.node = u.node AND j.seg_start = u.seg_start
    GROUP BY ALL
),
pieces AS (
    SELECT p.stream_id, p.h AS hour_idx,
           CASE WHEN p.unpriced THEN NULL WHEN st.gpu_level THEN p.label_job ELSE st.job_id END AS job_id,
           CASE WHEN p.unpriced THEN 'unpriced' WHEN st.total THEN 'counter_total' WHEN st.gpu_level THEN 'gpu_label'
                WHEN st.job_id IS NULL THEN 'idle' ELSE 'exporter' END AS attribution,
           p.quality, p.part_j AS energy_j,
           CASE WHEN st.kind = 'job' AND st.stream_id IN (SELECT stream_id FROM gpu_held_hour) THEN 0
                ELSE p.p_e - p.p_s END AS dur_us
    FROM parts p JOIN st USING (stream_id)
    WHERE NOT st.gpu_level OR p.label_job IS NOT NULL OR p.unpriced
    UNION ALL
    SELECT u.stream_id, u.h, j.job_id, 'node_share', u.quality,
           u.q_j * coalesce(j.gpus, u.n) / greatest(u.n, s.held), u.q_us * coalesce(j.gpus, u.n) / greatest(u.n, s.held)
    FROM unl u
    JOIN seg_jobs j ON j.cluster = u.cluster AND j.node = u.node AND j.seg_start = u.seg_start
    JOIN seg_sum s ON s.stream_id = u.stream_id AND s.h = u.h AND s.seg_start = u.seg_start AND s.p_s = u.p_s
    UNION ALL
    SELECT u.stream_id, u.h, NULL, 'unallocated', u.quality,
           u.q_j * (1 - coalesce(s.held, 0) / greatest(u.n, coalesce(s.held, 0))),
           u.q_us * (1 - coalesce(s.held, 0) / greatest(u.n, coalesce(s.held, 0)))
    FROM unl u
    LEFT JOIN seg_sum s ON s.stream_id = u.stream_id AND s.h = u.h AND s.seg_start = u.seg_start AND s.p_s = u.p_s
    WHERE coalesce(s.held, 0) < u.n
    UNION ALL
    SELECT h.stream_id, h.hour_idx, st.job_id, 'exporter', h.quality, 0.0, h.held_s * 1e6
    FROM gpu_held_hour h JOIN streams st USING (stream_id)
)
SELECT stream_id, hour_idx, job_id, attribution, quality, sum(energy_j) AS energy_j, sum(dur_us) / 1e6 AS gpu_seconds
FROM pieces
GROUP BY ALL
