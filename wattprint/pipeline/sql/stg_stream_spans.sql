-- The time each stream's intervals span, from the start of its first interval that counted something to the end of
-- its last one (gaps included: a counter measures across them). Intervals that count nothing at either end are left
-- out: a powered GPU's counter never stands still, so they are Prometheus repeating a series' last sample for its
-- 5-minute lookback after the series went away (a board swapped out, an exporter removed). Run after the counter
-- intervals and again after the power intervals; each run adds the streams not spanned yet. Read by stg_gpu_coverage.sql (which source covers a GPU when) and
-- int_hourly_pieces.sql (which GPUs a node had in an hour).
INSERT INTO stream_spans (stream_id, start_ts, end_ts)
SELECT stream_id, min(start_ts), max(end_ts)
FROM energy_intervals
WHERE energy_j > 0 AND stream_id NOT IN (SELECT stream_id FROM stream_spans)
GROUP BY stream_id
