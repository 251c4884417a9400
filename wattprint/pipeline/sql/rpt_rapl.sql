-- The nodes in scope (hosts where the scope's jobs have GPU, CPU or CPU-time rows), most GPU energy first, with
-- what their RAPL series said in the window [$start, $end): samples, readable samples, and the node's hours with
-- jobs but no RAPL series (report/quality.py turns these into the nodes without readable RAPL).
WITH n AS (SELECT cluster, hostname, sum(energy_j) AS gpu_j, count(DISTINCT hour_ts) AS hours
           FROM rpt_rows WHERE kind <> 'node' GROUP BY 1, 2),
r AS (SELECT cluster, hostname, sum(samples) AS samples, sum(readable_samples) AS readable
      FROM rapl_hours() WHERE hour_ts >= $start AND hour_ts < $end GROUP BY 1, 2),
m AS (SELECT h.cluster, h.hostname, count(*) AS hours FROM (SELECT DISTINCT cluster, hostname, hour_ts
      FROM rpt_rows WHERE kind <> 'node') h WHERE NOT EXISTS (SELECT 1 FROM rapl_hours() x WHERE x.cluster = h.cluster
      AND x.hostname = h.hostname AND x.hour_ts = h.hour_ts AND x.samples > 0) GROUP BY 1, 2)
SELECT n.cluster, n.hostname, n.gpu_j, n.hours, coalesce(r.samples, 0) AS samples, coalesce(r.readable, 0) AS readable,
       coalesce(m.hours, 0) AS missing
FROM n
LEFT JOIN r USING (cluster, hostname)
LEFT JOIN m USING (cluster, hostname)
ORDER BY n.gpu_j DESC, 1, 2
