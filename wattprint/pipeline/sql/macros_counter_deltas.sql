-- Counter samples -> the amount counted per interval, for the stream kinds asked for: a table macro, so energy
-- counters (stg_counter_intervals: joules) and time counters (fct_job_cpu_time_hour: CPU seconds; int_hourly_pieces:
-- the seconds a job held a GPU) follow the same rules without sharing a column.
-- Columns: stream_id, start_ts, end_ts, amount, quality, label_job.
-- A drop is a restart from 0 (the value after it is the amount since the restart: 'counter_reset', or 'gap_reset'
-- when the interval is also longer than the gap bound, so the energy before the restart is unknown) only when that
-- amount is possible in the interval. A total counter (a GPU's, a CPU socket's) cannot grow faster than any board
-- draws (2,000 W per GPU, 1,000 W per socket and RAPL domain), a held-time counter faster than the clock, a CPU-time
-- counter faster than 4,096 hardware threads, a node's (BMC) counter faster than 100 kW (several times the largest
-- 8-GPU node): a drop to more than that is the counter stepping back (an exporter
-- restored from an older --state-file, or a merge of two stores), which counts nothing: 'counter_stepback'. The
-- split counters (a job's or the idle part of a GPU or socket) are bounded by their parent's counter instead, in
-- stg_counter_intervals.sql. A wattprint counter that first appears inside a window we were already looking at
-- (the same store and query at ts - step did not return it) started from 0, so its first value is what was used
-- since then and counts (over the step it appeared in); dcgm's counter runs since driver load, so never.
-- The most a counter of this stream kind can rise in dt seconds (NULL: bounded by its parent, or not at all).
CREATE OR REPLACE TEMP MACRO max_rise(kind, dt) AS
    CASE kind WHEN 'gpu' THEN 2000.0 * dt WHEN 'cpu' THEN 1000.0 * dt WHEN 'held_idle' THEN 2000.0 * dt
              WHEN 'gpu_seconds' THEN 1.5 * dt + 60.0 WHEN 'held_idle_seconds' THEN 1.5 * dt + 60.0
              WHEN 'equal_share_seconds' THEN 1.5 * dt + 60.0 WHEN 'cpu_seconds' THEN 4096.0 * dt
              WHEN 'node' THEN 100000.0 * dt END;
CREATE OR REPLACE TEMP MACRO counter_deltas(kinds, max_gap_s) AS TABLE
WITH sx AS (
    -- the streams' series, with an integer rank standing in for the owning query (grouping samples by integers
    -- only is several times faster than by the strings), and whether the series is its stream's only one
    SELECT ss.series_id, ss.stream_id, ss.source, ss.kind, ss.series_kind, se.job_id, se.query,
           dense_rank() OVER (ORDER BY se.query) AS owner_rank,
           count(*) OVER (PARTITION BY ss.stream_id) = 1 AS alone
    FROM stg_series_stream ss
    JOIN series se USING (series_id)
    WHERE list_contains(kinds, ss.kind)
),
-- one value per stream and step. A stream's only series has one sample per step already (ingest replaces whole
-- windows), so nearly every sample skips the grouping. A sample that is no reading (macros.sql, unread) is left out. Where two series of a stream overlap (dcgm's job label
-- changed and the old series lingers for Prometheus' lookback), the higher counter value wins, with its label.
pts AS (
    SELECT sx.stream_id, sm.ts, sm.value, sm.series_id AS top_series, sx.owner_rank
    FROM samples sm
    JOIN sx USING (series_id)
    WHERE sx.alone AND NOT unread(sx.source, sm.value)
    UNION ALL
    SELECT sx.stream_id, sm.ts,
           max(sm.value) AS value,
           arg_max(sm.series_id, sm.value) AS top_series,
           min(sx.owner_rank) AS owner_rank
    FROM samples sm
    JOIN sx USING (series_id)
    WHERE NOT sx.alone AND NOT unread(sx.source, sm.value)
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
       CASE WHEN seq.value >= seq.prev_value THEN seq.value - seq.prev_value
            WHEN seq.value > max_rise(sx.kind, epoch(seq.ts) - epoch(seq.prev_ts)) THEN 0.0
            ELSE seq.value END AS amount,
       CASE WHEN seq.value >= seq.prev_value
            THEN CASE WHEN epoch(seq.ts) - epoch(seq.prev_ts) > max_gap_s THEN 'gap' ELSE 'counter' END
            WHEN seq.value > max_rise(sx.kind, epoch(seq.ts) - epoch(seq.prev_ts)) THEN 'counter_stepback'
            WHEN epoch(seq.ts) - epoch(seq.prev_ts) > max_gap_s THEN 'gap_reset'
            ELSE 'counter_reset' END AS quality,
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
