-- The (zone, hour) pairs the results price: every hour a stream has a piece in, with its cluster's zone ('' for a
-- cluster without one).
SELECT DISTINCT coalesce(c.zone, '') AS zone, h.hour_idx
FROM int_hourly_pieces h
JOIN streams st USING (stream_id)
LEFT JOIN clusters c USING (cluster)
