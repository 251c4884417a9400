-- Power gauge -> energy by the trapezoid rule between samples, flagged as lower quality. Two gauges of one GPU in one
-- stream (AMD's package power and power usage, amd.py): the larger at each step. A sample that is no reading
-- (macros.sql, unread) is left out, so the time it covers is a gap. Across a gap longer than the bound nothing is
-- invented: energy_gaps.sql records it instead. An energy counter is exact, so
-- intervals wholly inside the time an energy counter measured the same GPU (gpu_coverage) are not made at all;
-- int_hourly_pieces.sql cuts the ones that overlap it.
WITH pts AS (
    SELECT ss.stream_id, sm.ts, max(sm.value) AS value, arg_max(se.job_id, sm.value) AS label_job
    FROM samples sm
    JOIN stg_series_stream ss USING (series_id)
    JOIN series se USING (series_id)
    WHERE ss.kind = 'gpu_power' AND NOT unread(ss.source, sm.value)
    GROUP BY ss.stream_id, sm.ts
),
seq AS (
    SELECT *, lag(ts) OVER w AS prev_ts, lag(value) OVER w AS prev_value
    FROM pts
    WINDOW w AS (PARTITION BY stream_id ORDER BY ts)
)
SELECT q.stream_id, q.prev_ts AS start_ts, q.ts AS end_ts,
       ((q.prev_value + q.value) / 2 * (epoch(q.ts) - epoch(q.prev_ts)))::DOUBLE AS energy_j,
       'power_integrated' AS quality, q.label_job
FROM seq q
JOIN streams st USING (stream_id)
WHERE q.prev_ts IS NOT NULL AND epoch(q.ts) - epoch(q.prev_ts) <= $max_gap_s
  AND NOT EXISTS (SELECT 1 FROM gpu_coverage c
                  WHERE c.gpu_key = st.gpu_key AND c.below_rank = 3 AND c.cov_start <= q.prev_ts AND c.cov_end >= q.ts)
