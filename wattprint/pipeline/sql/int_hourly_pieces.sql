-- Who used each joule, per stream and UTC hour.
--  exporter:      wattprint's per-job counters (the exporter already split each GPU interval exactly; likewise each
--                 CPU socket's package and DRAM energy, by the jobs' CPU time)
--  idle:          wattprint's idle counters (no job on the GPU; host energy no job's CPU time accounts for)
--  gpu_label:     GPU-level energy (dcgm, power) whose series names the job (hpc_job / pod label)
--  node_share:    GPU-level energy without a label: the ledger's jobs on that node in that interval get
--                 gpus_of_job / gpus_on_node of it, gpus_on_node being the GPUs the node had in that hour (a job with
--                 unknown GPU count holds the whole node; over-subscribed nodes are scaled down so energy is never
--                 created)
--  unallocated:   the rest of GPU-level energy, kept visible
--  counter_total: not priced: the wattprint exporter's total counters (a GPU's, a CPU socket's), which its split
--                 streams (exporter + idle) must add up to (int_balance_pieces.sql, fct_gpu_hour.sql)
--  unpriced:      not priced: what a less preferred source (dcgm, a power gauge) measured of a GPU while a better one
--                 measured it too (gpu_coverage.sql); one GPU is priced from one source at a time
-- Intervals are cut at allocation changes and at hour boundaries, pro rata by time.
-- Made for the hours [$eval_lo_h, $eval_hi_h) (every hour in a full build; in an incremental one the hours it rebuilds
-- and what int_balance_pieces.sql needs around them, model.py): each from every interval that overlaps it.
-- gpu_seconds: the time each piece covers in which its counter counted something, times the job's share of the GPU
-- (node_share) or the unshared rest (unallocated). A job's exporter rows take it from the exporter's held-GPU-time
-- counter (gpu_held_hour), else from the time its energy counter rose: never the retention tail the exporter keeps
-- its series for after it left. Summed
-- over a node's GPUs a job's node_share gpu_seconds are its allocated GPUs x time. (On host streams it is just the
-- time the piece covers; fct_job_cpu_hour does not use it.)
--
-- How it stays close to one GROUP BY over energy_intervals: the only per-interval work is cutting at
-- hours and, for unlabelled GPU-level intervals in the few hours where an allocation starts or ends
-- inside the hour (cut_hours), cutting at those changes. Energy is summed per (stream, hour, quality,
-- label) first; everything else (streams, the allocation segment of a whole hour, the jobs sharing a
-- segment, the GPUs of the node in that hour) is joined onto those hourly sums, not onto the intervals.
-- Intervals of GPU-level streams that a better source covers in part (rare: two exporters on one GPU) are cut at
-- that coverage first.
WITH
streams_in AS (
    SELECT stream_id, source, kind, cluster, node, gpu_key, job_id,
           source <> 'wattprint' AND kind IN ('gpu', 'gpu_power') AS gpu_level,
           source = 'wattprint' AND kind IN ('gpu', 'cpu') AS total,
           CASE WHEN source = 'wattprint' THEN 1 WHEN kind = 'gpu' THEN 2 ELSE 3 END AS rank
    FROM streams
    WHERE (source = 'wattprint' AND kind IN ('job', 'idle', 'gpu', 'cpu_job', 'cpu_idle', 'cpu'))
       OR (source <> 'wattprint' AND kind IN ('gpu', 'gpu_power'))
),
held_jobs AS (
    SELECT DISTINCT stream_id FROM gpu_held_hour
),
segs AS (
    SELECT DISTINCT cluster, node, seg_start, seg_end FROM int_node_allocations
),
seg_jobs AS (
    SELECT * FROM int_node_allocations WHERE job_id IS NOT NULL
),
-- the GPUs a node had in each hour: every GPU counter or gauge (any source) whose stream spans part of the hour
node_gpu_hours AS (
    SELECT st.cluster, st.node, h AS hour_idx, count(DISTINCT st.gpu_key) AS n
    FROM (SELECT *, unnest(hours_of(greatest(epoch_us(start_ts), $eval_lo_h::BIGINT * 3600000000),
                                    least(epoch_us(end_ts), $eval_hi_h::BIGINT * 3600000000))) AS h
          FROM stream_spans
          WHERE end_ts > to_timestamp($eval_lo_h::BIGINT * 3600)
            AND start_ts < to_timestamp($eval_hi_h::BIGINT * 3600)) sp
    JOIN streams st USING (stream_id)
    WHERE st.kind IN ('gpu', 'gpu_power', 'idle')
    GROUP BY ALL
),
-- a better source's coverage of each GPU-level stream, islands in time order
cov AS (
    SELECT p.stream_id, epoch_us(c.cov_start) AS c_s, epoch_us(c.cov_end) AS c_e,
           coalesce(epoch_us(lag(c.cov_end) OVER w), -9223372036854775807) AS prev_e,
           coalesce(epoch_us(lead(c.cov_start) OVER w), 9223372036854775807) AS next_s
    FROM streams_in p
    JOIN gpu_coverage c ON c.gpu_key = p.gpu_key AND c.below_rank = p.rank
    WHERE p.gpu_level
    WINDOW w AS (PARTITION BY p.stream_id ORDER BY c.cov_start)
),
-- intervals of the covered streams, each with the islands it overlaps (none: NULL)
civ AS (
    SELECT i.stream_id, i.quality, i.label_job, i.energy_j, epoch_us(i.start_ts) AS s_us, epoch_us(i.end_ts) AS e_us,
           c.c_s, c.c_e, c.prev_e, c.next_s
    FROM energy_intervals i
    JOIN (SELECT DISTINCT stream_id FROM cov) cs USING (stream_id)
    LEFT JOIN cov c ON c.stream_id = i.stream_id AND c.c_s < epoch_us(i.end_ts) AND c.c_e > epoch_us(i.start_ts)
    WHERE i.energy_j > 0
      AND i.end_ts > to_timestamp($eval_lo_h::BIGINT * 3600) AND i.start_ts < to_timestamp($eval_hi_h::BIGINT * 3600)
),
-- every interval that counted something (one that counted nothing adds neither energy nor time: a job's counter in
-- the retention tail after it left, an idle counter while a job runs, Prometheus repeating a vanished series),
-- as it is priced: whole, or the parts no better source covers (before the first island it overlaps, and after
-- each one up to the next), or unpriced (the parts inside the islands): those carry their stream's id negated, so
-- that they are summed apart without another grouping key
base AS NOT MATERIALIZED (
    SELECT stream_id, quality, label_job, energy_j, epoch_us(start_ts) AS s_us, epoch_us(end_ts) AS e_us
    FROM energy_intervals
    WHERE energy_j > 0 AND stream_id NOT IN (SELECT stream_id FROM cov)
      AND end_ts > to_timestamp($eval_lo_h::BIGINT * 3600) AND start_ts < to_timestamp($eval_hi_h::BIGINT * 3600)
    UNION ALL
    SELECT stream_id, quality, label_job, energy_j, s_us, e_us FROM civ WHERE c_s IS NULL
    UNION ALL
    SELECT stream_id, quality, label_job, energy_j * (c_s - s_us) / (e_us - s_us), s_us, c_s
    FROM civ WHERE prev_e <= s_us AND c_s > s_us
    UNION ALL
    SELECT stream_id, quality, label_job, energy_j * (least(e_us, next_s) - c_e) / (e_us - s_us), c_e,
           least(e_us, next_s)
    FROM civ WHERE c_e < e_us
    UNION ALL
    SELECT -stream_id, quality, label_job,
           energy_j * (least(e_us, c_e) - greatest(s_us, c_s)) / (e_us - s_us), greatest(s_us, c_s), least(e_us, c_e)
    FROM civ WHERE c_s IS NOT NULL
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
    JOIN streams_in p ON p.gpu_level AND p.cluster = c.cluster AND p.node = c.node
),
-- every interval cut at UTC hours: its first (nearly always its only) hour, then any further hours
hour_pieces AS NOT MATERIALIZED (
    SELECT stream_id, quality, label_job, s_us // 3600000000 AS hour_idx,
           s_us AS p_s, least(e_us, (s_us // 3600000000 + 1) * 3600000000) AS p_e,
           CASE WHEN s_us // 3600000000 = (e_us - 1) // 3600000000 THEN energy_j
                ELSE energy_j * (least(e_us, (s_us // 3600000000 + 1) * 3600000000) - s_us) / (e_us - s_us)
           END AS energy_j
    FROM base
    UNION ALL
    SELECT stream_id, quality, label_job, h, h * 3600000000, least(e_us, (h + 1) * 3600000000),
           energy_j * (least(e_us, (h + 1) * 3600000000) - h * 3600000000) / (e_us - s_us)
    FROM (SELECT *, unnest(range(s_us // 3600000000 + 1, (e_us - 1) // 3600000000 + 1)) AS h
          FROM base WHERE s_us // 3600000000 <> (e_us - 1) // 3600000000)
),
-- energy per (stream, hour, quality, label), with the time it covers, in one pass over the pieces: an unlabelled
-- priced piece in a cut hour is cut again at the segments overlapping it (pro rata by time) and summed per segment
-- (cut: true), every other piece whole (cut: false, seg_start NULL). The join's key is NULL for the pieces that are
-- never cut (labelled, unpriced), and its build side is empty when no allocation changes inside an hour.
-- Unlabelled and labelled are summed apart: nearly all energy is unlabelled, and a label column that is all NULL
-- lets DuckDB skip the labelled pass from its statistics.
cut_or_whole AS NOT MATERIALIZED (
    SELECT h.stream_id, h.hour_idx, h.quality, h.label_job, c.seg_start, c.hour_idx IS NOT NULL AS cut,
           CASE WHEN c.hour_idx IS NULL THEN h.energy_j
                ELSE h.energy_j * (least(h.p_e, c.e_us) - greatest(h.p_s, c.s_us)) / (h.p_e - h.p_s) END AS energy_j,
           CASE WHEN c.hour_idx IS NULL THEN h.p_e - h.p_s
                ELSE least(h.p_e, c.e_us) - greatest(h.p_s, c.s_us) END AS dur_us
    FROM hour_pieces h
    LEFT JOIN cut_hours c ON c.stream_id = CASE WHEN h.label_job IS NULL THEN h.stream_id END
                         AND c.hour_idx = h.hour_idx AND c.s_us < h.p_e AND c.e_us > h.p_s
),
hourly AS (
    SELECT stream_id, hour_idx, quality, NULL::VARCHAR AS label_job, seg_start, cut, exact_sum(energy_j) AS energy_j,
           sum(dur_us) AS dur_us
    FROM cut_or_whole WHERE label_job IS NULL
    GROUP BY ALL
    UNION ALL
    SELECT stream_id, hour_idx, quality, label_job, seg_start, cut, exact_sum(energy_j), sum(dur_us)
    FROM cut_or_whole WHERE label_job IS NOT NULL
    GROUP BY ALL
),
direct AS (
    SELECT p.stream_id, h.hour_idx, h.quality, h.energy_j,
           CASE WHEN p.kind = 'job' AND p.stream_id IN (SELECT stream_id FROM held_jobs) THEN 0 ELSE h.dur_us END
               AS dur_us,
           CASE WHEN h.stream_id < 0 THEN NULL WHEN p.gpu_level THEN h.label_job ELSE p.job_id END AS job_id,
           CASE WHEN h.stream_id < 0 THEN 'unpriced' WHEN p.total THEN 'counter_total'
                WHEN p.gpu_level THEN 'gpu_label' WHEN p.job_id IS NULL THEN 'idle' ELSE 'exporter' END AS attribution,
           -- alone in its key: a labelled GPU-level stream's (the label is its job); an exporter stream's when no
           -- interval has a label (else another label of the stream could give the same job) and it has no
           -- held-time rows (those are added to its own)
           coalesce(h.stream_id > 0 AND CASE WHEN p.gpu_level THEN h.label_job IS NOT NULL
                                             ELSE NOT EXISTS (SELECT 1 FROM hourly x WHERE x.label_job IS NOT NULL)
                                                  AND p.stream_id NOT IN (SELECT stream_id FROM held_jobs) END,
                    false) AS single
    FROM hourly h JOIN streams_in p ON p.stream_id = abs(h.stream_id)
    WHERE NOT p.gpu_level OR h.label_job IS NOT NULL OR h.stream_id < 0
),
-- unlabelled GPU-level energy per (stream, hour, segment): a whole hour lies in the node's last segment
-- starting at or before it (none: the node had no allocation); cut hours come cut (a piece of a cut hour that no
-- segment overlaps, i.e. one of no duration, counts in neither)
shared AS (
    SELECT h.stream_id, h.hour_idx, h.quality, h.energy_j, h.dur_us, p.cluster, p.node, s.seg_start, false AS cut
    FROM (SELECT * FROM hourly WHERE NOT cut AND label_job IS NULL AND stream_id > 0
          AND NOT EXISTS (SELECT 1 FROM cut_hours c WHERE c.stream_id = hourly.stream_id
                                                      AND c.hour_idx = hourly.hour_idx)) h
    JOIN streams_in p ON p.stream_id = h.stream_id AND p.gpu_level
    ASOF LEFT JOIN segs s ON s.cluster = p.cluster AND s.node = p.node
                         AND s.seg_start <= to_timestamp(h.hour_idx * 3600)
    UNION ALL
    SELECT c.stream_id, c.hour_idx, c.quality, c.energy_j, c.dur_us, p.cluster, p.node, c.seg_start, true
    FROM hourly c JOIN streams_in p USING (stream_id)
    WHERE c.cut
),
-- each job's share of the GPU's energy in a segment and hour: its GPUs (unknown: all the node's) over the node's
-- GPUs in that hour, or over the GPUs the segment's jobs hold together when that is more (never more than all)
shared_n AS (
    SELECT u.*, g.n FROM shared u
    JOIN node_gpu_hours g ON g.cluster = u.cluster AND g.node = u.node AND g.hour_idx = u.hour_idx
),
seg_held AS (
    SELECT DISTINCT cluster, node, seg_start, seg_known, seg_unknown FROM seg_jobs
),
-- single: the piece is the only one of its (stream, hour, job, attribution, quality), so it needs no summing: the
-- shares of a whole hour (one segment, each job once in it) and most direct ones. Those of a cut hour (a job in
-- several of its segments), the unpriced ones and the held-time rows are summed.
pieces AS (
    SELECT stream_id, hour_idx, job_id, attribution, quality, energy_j, dur_us, single FROM direct
    UNION ALL
    SELECT u.stream_id, u.hour_idx, j.job_id, 'node_share', u.quality,
           u.energy_j * coalesce(j.gpus, u.n) / greatest(u.n, j.seg_known + j.seg_unknown * u.n),
           u.dur_us * coalesce(j.gpus, u.n) / greatest(u.n, j.seg_known + j.seg_unknown * u.n), NOT u.cut
    FROM shared_n u
    JOIN seg_jobs j ON j.cluster = u.cluster AND j.node = u.node AND j.seg_start = u.seg_start
    UNION ALL
    SELECT u.stream_id, u.hour_idx, NULL, 'unallocated', u.quality,
           u.energy_j * (1 - coalesce(t.seg_known + t.seg_unknown * u.n, 0)
                             / greatest(u.n, coalesce(t.seg_known + t.seg_unknown * u.n, 0))),
           u.dur_us * (1 - coalesce(t.seg_known + t.seg_unknown * u.n, 0)
                           / greatest(u.n, coalesce(t.seg_known + t.seg_unknown * u.n, 0))), NOT u.cut
    FROM shared_n u
    LEFT JOIN seg_held t ON t.cluster = u.cluster AND t.node = u.node AND t.seg_start = u.seg_start
    WHERE coalesce(t.seg_known + t.seg_unknown * u.n, 0) < u.n
    UNION ALL
    -- the time each job held its GPU, from the exporter's held-time counter
    SELECT h.stream_id, h.hour_idx, st.job_id, 'exporter', h.quality, 0.0, h.held_s * 1e6, false
    FROM gpu_held_hour h JOIN streams st USING (stream_id)
    WHERE h.hour_idx >= $eval_lo_h AND h.hour_idx < $eval_hi_h
)
-- (a single piece rounded as exact_sum rounds a sum of one)
SELECT stream_id, hour_idx, job_id, attribution, quality, CAST(exact(energy_j) AS DOUBLE) AS energy_j,
       CAST(exact(dur_us) AS DOUBLE) / 1e6 AS gpu_seconds
FROM pieces
WHERE single AND hour_idx >= $eval_lo_h AND hour_idx < $eval_hi_h
UNION ALL
SELECT stream_id, hour_idx, job_id, attribution, quality, exact_sum(energy_j), exact_sum(dur_us) / 1e6
FROM pieces
WHERE NOT single AND hour_idx >= $eval_lo_h AND hour_idx < $eval_hi_h
GROUP BY stream_id, hour_idx, job_id, attribution, quality
