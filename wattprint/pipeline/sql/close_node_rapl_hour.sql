-- The hosts' RAPL readability per hour (node_rapl_hour.sql) in the months `wattprint compact` closes, [$lo, $hi):
-- kept in closed_node_rapl_hour for the reports of those months.
SELECT hour_ts, cluster, hostname, samples, readable_samples
FROM node_rapl_hour
WHERE hour_ts >= $lo AND hour_ts < $hi
ORDER BY ALL
