-- The GPUs' telemetry gaps (energy_gaps.sql) that end in the months `wattprint compact` closes, [$lo, $hi): kept in
-- closed_gpu_gaps, keyed by GPU, for the reports of those months once their samples are gone.
SELECT s.gpu_key, g.start_ts, g.end_ts, g.cause
FROM energy_gaps g
JOIN streams s USING (stream_id)
WHERE s.gpu_key IS NOT NULL AND g.end_ts > $lo AND g.end_ts <= $hi
ORDER BY ALL
