-- The (zone, hour) pairs the results price: every hour a stream has a piece in, with its cluster's zone ('' for a
-- cluster without one). The hours of held-but-idle rows (gpu_held_idle_hour.sql) are its job's energy hours; they are
-- added in case a job's energy counter counted nothing in such an hour (a stepped-back counter); those of the BMC's
-- node energy (node_hour.sql) in case the node layer has an hour no GPU or host counter of its cluster has.
SELECT DISTINCT coalesce(c.zone, '') AS zone, h.hour_idx
FROM int_hourly_pieces h
JOIN streams st USING (stream_id)
LEFT JOIN clusters c USING (cluster)
UNION
SELECT coalesce(c.zone, ''), h.hour_idx
FROM gpu_held_idle_hour h
JOIN streams st USING (stream_id)
LEFT JOIN clusters c USING (cluster)
WHERE h.hour_idx >= $eval_lo_h AND h.hour_idx < $eval_hi_h
UNION
SELECT coalesce(c.zone, ''), n.hour_idx
FROM node_hour n
LEFT JOIN clusters c USING (cluster)
WHERE n.hour_idx >= $eval_lo_h AND n.hour_idx < $eval_hi_h
