-- The time each stream's intervals span, from the start of its first interval that counted something to the end of
-- its last one (gaps included: a counter measures across them). Intervals that count nothing at either end are left
-- out: a powered GPU's counter never stands still, so they are Prometheus repeating a series' last sample for its
-- 5-minute lookback after the series went away (a board swapped out, an exporter removed). Read by
-- int_hourly_pieces.sql (which GPUs a node had in an hour); gpu_coverage.sql spans the energy counters alike.
SELECT stream_id, min(start_ts) AS start_ts, max(end_ts) AS end_ts
FROM energy_intervals
WHERE energy_j > 0
GROUP BY stream_id
