-- The GPU counters' stepbacks (energy_intervals.sql, quality counter_stepback) that end in the months `wattprint
-- compact` closes, [$lo, $hi): kept in closed_gpu_stepbacks for the reports of those months.
SELECT s.gpu_key, i.start_ts, i.end_ts
FROM energy_intervals i
JOIN streams s USING (stream_id)
WHERE i.quality = 'counter_stepback' AND s.gpu_key IS NOT NULL AND i.end_ts > $lo AND i.end_ts <= $hi
ORDER BY ALL
