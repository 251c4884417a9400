-- Power gauge -> energy by the trapezoid rule between samples, flagged as lower quality. Across a
-- gap longer than the bound nothing is invented: stg_gaps_power records it instead.
INSERT INTO energy_intervals (stream_id, start_ts, end_ts, energy_j, quality, label_job)
WITH pts AS (
    SELECT ss.stream_id, sm.ts, max(sm.value) AS value, arg_max(se.job_id, sm.value) AS label_job
    FROM samples sm
    JOIN series_stream ss USING (series_id)
    JOIN series se USING (series_id)
    WHERE ss.kind = 'gpu_power' AND ss.stream_id IN (SELECT stream_id FROM streams)
    GROUP BY ss.stream_id, sm.ts
),
seq AS (
    SELECT *, lag(ts) OVER w AS prev_ts, lag(value) OVER w AS prev_value
    FROM pts
    WINDOW w AS (PARTITION BY stream_id ORDER BY ts)
)
SELECT stream_id, prev_ts, ts, (prev_value + value) / 2 * (epoch(ts) - epoch(prev_ts)), 'power_integrated',
       label_job
FROM seq
WHERE prev_ts IS NOT NULL AND epoch(ts) - epoch(prev_ts) <= $max_gap_s
