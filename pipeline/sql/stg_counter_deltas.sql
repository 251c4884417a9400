-- Counter samples -> the amount counted per interval, for the stream kinds asked for: a table macro, so energy
-- counters (stg_intervals_counter: joules) and CPU-time counters (fct_job_cpu_time_hour: seconds) follow the same
-- rules without sharing a column. Columns: stream_id, start_ts, end_ts, amount, quality, label_job.
-- A drop means the counter restarted from 0, so the value after the drop is the amount since the restart. A
-- wattprint counter that first appears inside a window we were already looking at (the same store and query at
-- ts - step did not return it) started from 0, so its first value is what was used since then and counts (over
-- the step it appeared in); dcgm's counter runs since driver load, so never.
CREATE OR REPLACE TEMP MACRO counter_deltas(kinds, max_gap_s) AS TABLE
WITH sx AS (
    -- the streams' series, with an integer rank standing in for the owning query (grouping samples by integers
    -- only is several times faster than by the strings), and whether the series is its stream's only one
    SELECT ss.series_id, ss.stream_id, ss.source, ss.series_kind, se.job_id, se.query,
           dense_rank() OVER (ORDER BY se.query) AS owner_rank,
           count(*) OVER (PARTITION BY ss.stream_id) = 1 AS alone
    FROM series_stream ss
    JOIN series se USING (series_id)
    WHERE list_contains(kinds, ss.kind)
),
-- one value per stream and step. A stream's only series has one sample per step already (ingest replaces whole
-- windows), so nearly every sample skips the grouping. Where two series of a stream overlap (dcgm's job label
-- changed and the old series lingers for Prometheus' lookback), the higher counter value wins, with its label.
pts AS (
    SELECT sx.stream_id, sm.ts, sm.value, sm.series_id AS top_series, sx.owner_rank
    FROM samples sm
    JOIN sx USING (series_id)
    WHERE sx.alone
    UNION ALL
    SELECT sx.stream_id, sm.ts,
           max(sm.value) AS value,
           arg_max(sm.series_id, sm.value) AS top_series,
           min(sx.owner_rank) AS owner_rank
    FROM samples sm
    JOIN sx USING (series_id)
    WHERE NOT sx.alone
    GROUP BY sx.stream_id, sm.ts
),
seq AS (
    SELECT *,
           lag(ts) OVER w AS prev_ts,
           lag(value) OVER w AS prev_value
    FROM pts
    WINDOW w AS (PARTITION BY stream_id ORDER BY ts)
)
SELECT seq.stream_id, seq.prev_ts AS start_ts, seq.ts AS end_ts,
       CASE WHEN seq.value < seq.prev_value THEN seq.value ELSE seq.value - seq.prev_value END AS amount,
       CASE WHEN seq.value < seq.prev_value THEN 'counter_reset'
            WHEN epoch(seq.ts) - epoch(seq.prev_ts) > max_gap_s THEN 'gap'
            ELSE 'counter' END AS quality,
       CASE WHEN sx.source <> 'wattprint' THEN sx.job_id END AS label_job
FROM seq
JOIN sx ON sx.series_id = seq.top_series
WHERE seq.prev_ts IS NOT NULL
UNION ALL
SELECT seq.stream_id, seq.ts - to_seconds(c.step_s), seq.ts, seq.value, 'first_sample', NULL
FROM seq
JOIN sx ON sx.series_id = seq.top_series
JOIN (SELECT DISTINCT owner_rank, query FROM sx) o ON o.owner_rank = seq.owner_rank
JOIN ingest_coverage c
  ON c.kind = sx.series_kind
 AND c.query = o.query
 AND c.start_ts <= seq.ts - to_seconds(c.step_s)
 AND c.end_ts >= seq.ts - to_seconds(c.step_s)
WHERE seq.prev_ts IS NULL
  AND sx.source = 'wattprint'
  AND seq.value > 0
QUALIFY row_number() OVER (PARTITION BY seq.stream_id ORDER BY c.step_s) = 1
