-- Counter samples -> energy per interval. A drop means the counter restarted from 0, so the value
-- after the drop is the energy since the restart. A wattprint counter that first appears inside a
-- window we were already looking at (the same store and query at ts - step did not return it) started from 0, so its
-- first value is energy used since then and counts (over the step it appeared in); dcgm's counter runs since driver load, so never.
INSERT INTO energy_intervals (stream_id, start_ts, end_ts, energy_j, quality, label_job)
WITH pts AS (
    SELECT ss.stream_id, ss.source, ss.series_kind, sm.ts,
           max(sm.value) AS value,
           arg_max(se.job_id, sm.value) AS label_job,
           min(se.query) AS owner
    FROM samples sm
    JOIN series_stream ss USING (series_id)
    JOIN series se USING (series_id)
    WHERE ss.kind IN ('job', 'idle', 'gpu')
    GROUP BY ss.stream_id, ss.source, ss.series_kind, sm.ts
),
seq AS (
    SELECT *,
           lag(ts) OVER w AS prev_ts,
           lag(value) OVER w AS prev_value
    FROM pts
    WINDOW w AS (PARTITION BY stream_id ORDER BY ts)
)
SELECT stream_id, prev_ts, ts,
       CASE WHEN value < prev_value THEN value ELSE value - prev_value END,
       CASE WHEN value < prev_value THEN 'counter_reset'
            WHEN epoch(ts) - epoch(prev_ts) > $max_gap_s THEN 'gap'
            ELSE 'counter' END,
       CASE WHEN source <> 'wattprint' THEN label_job END
FROM seq
WHERE prev_ts IS NOT NULL
UNION ALL
SELECT seq.stream_id, seq.ts - to_seconds(c.step_s), seq.ts, seq.value, 'first_sample', NULL
FROM seq
JOIN ingest_coverage c
  ON c.kind = seq.series_kind
 AND c.query = seq.owner
 AND c.start_ts <= seq.ts - to_seconds(c.step_s)
 AND c.end_ts >= seq.ts - to_seconds(c.step_s)
WHERE seq.prev_ts IS NULL
  AND seq.source = 'wattprint'
  AND seq.value > 0
QUALIFY row_number() OVER (PARTITION BY seq.stream_id ORDER BY c.step_s) = 1
