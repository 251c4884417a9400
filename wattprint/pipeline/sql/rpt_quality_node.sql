-- The node layer's data quality (report/node_checks.py), per node over the report's node-hours of fct_node_hour: for a
-- project report ($fleet false) the (cluster, node, hour) of the scope's GPU, CPU and CPU-time rows, the nodes its jobs
-- ran on in the hours they ran there; for the all-projects report every node-hour of the window [$start, $end).
--  hours               the node-hours; bmc_hours of them with BMC data (the others: the node layer is absent there)
--  power_hours         BMC hours read from a power gauge (integrated: a fallback, counted) rather than a counter
--  node_j ... rapl_j   over the BMC hours: the BMC's node energy, the GPU boards', RAPL's (node_j = gpu_j + rapl_j +
--                      attributed_j - deficit_j, exactly: each node-hour's residual is attributed or a deficit)
--  deficit_hours       BMC hours that read less than the GPUs and RAPL together (residual counted as 0, never
--                      clamped silently); below_gpu_hours those below the GPU boards alone
--  without_rapl_hours  BMC hours without RAPL energy: their residual holds the CPUs' energy too
--  deficit_at          the first $max_listed of the deficit hours
WITH
scope AS (
    SELECT DISTINCT cluster, node_key(hostname) AS node, hour_ts FROM rpt_rows WHERE kind <> 'node'
),
h AS (
    SELECT f.*
    FROM fct_node_hour f
    WHERE f.hour_ts >= $start AND f.hour_ts < $end
      AND ($fleet OR EXISTS (SELECT 1 FROM scope s
                             WHERE s.cluster = f.cluster AND s.node = f.node AND s.hour_ts = f.hour_ts))
)
SELECT cluster, node, min(hostname) AS hostname,
       count(*) AS hours,
       count(node_j) AS bmc_hours,
       count(*) FILTER (WHERE reading_kind = 'power') AS power_hours,
       CAST(coalesce(sum(node_j), 0) AS DOUBLE) AS node_j,
       CAST(coalesce(sum(node_j) FILTER (WHERE reading_kind = 'power'), 0) AS DOUBLE) AS power_j,
       CAST(coalesce(sum(gpu_j) FILTER (WHERE node_j IS NOT NULL), 0) AS DOUBLE) AS gpu_j,
       CAST(coalesce(sum(rapl_j) FILTER (WHERE node_j IS NOT NULL), 0) AS DOUBLE) AS rapl_j,
       CAST(coalesce(sum(attributed_j), 0) AS DOUBLE) AS attributed_j,
       CAST(coalesce(sum(deficit_j), 0) AS DOUBLE) AS deficit_j,
       count(*) FILTER (WHERE deficit_j > 0) AS deficit_hours,
       count(*) FILTER (WHERE below_gpu) AS below_gpu_hours,
       count(*) FILTER (WHERE node_j IS NOT NULL AND NOT rapl_read) AS without_rapl_hours,
       coalesce(list(hour_ts ORDER BY hour_ts) FILTER (WHERE deficit_j > 0), [])[1:$max_listed] AS deficit_at
FROM h
GROUP BY cluster, node
ORDER BY cluster, node
