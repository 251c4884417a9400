-- Map each stored series onto a stream: one per (source, kind, cluster, host, GPU | CPU socket and domain[, job]).
-- dcgm series that differ only by their hpc_job/pod label are one GPU stream, so the GPU's counter
-- stays continuous when the job on it changes. The cluster comes from the series' label, else the
-- first node pattern of the cluster config that matches the host (node_matches: case-insensitive, full or short
-- name), else the default cluster.
-- Host series (the exporter's RAPL collector; the BMC's whole-node energy and power, kinds node and node_power, whose
-- domain is how the BMC was read: redfish | ipmi | '') have no GPU ('' for gpu and uuid); GPU series no socket or
-- domain ('').
-- Kind 'partition': an AMD GPU's secondary partitions' energy lines (amd.py), counted by the reports, never priced.
-- node is the host's node key and gpu_key the physical GPU (sql/macros.sql): joins to the ledger and between
-- sources use them, never the host name as spelled.
WITH s AS (
    SELECT se.series_id,
           se.source,
           se.kind AS series_kind,
           CASE se.kind WHEN 'job_energy' THEN 'job' WHEN 'idle_energy' THEN 'idle'
                        WHEN 'gpu_power' THEN 'gpu_power' WHEN 'job_gpu_seconds' THEN 'gpu_seconds'
                        WHEN 'cpu_energy' THEN 'cpu' WHEN 'cpu_idle_energy' THEN 'cpu_idle'
                        WHEN 'job_cpu_energy' THEN 'cpu_job' WHEN 'job_cpu_seconds' THEN 'cpu_seconds'
                        WHEN 'cpu_rapl_up' THEN 'rapl_up' WHEN 'job_held_idle_energy' THEN 'held_idle'
                        WHEN 'job_held_idle_seconds' THEN 'held_idle_seconds'
                        WHEN 'job_equal_share_seconds' THEN 'equal_share_seconds'
                        WHEN 'partition_energy' THEN 'partition' WHEN 'node_energy' THEN 'node'
                        WHEN 'node_power' THEN 'node_power' ELSE 'gpu' END AS kind,
           se.kind IN ('cpu_energy', 'cpu_idle_energy', 'job_cpu_energy', 'job_cpu_seconds', 'cpu_rapl_up',
                       'node_energy', 'node_power') AS host,
           coalesce(se.cluster,
                    (SELECT cn.cluster FROM cluster_nodes cn
                     WHERE node_matches(coalesce(se.hostname, ''), cn.pattern) ORDER BY cn.ord LIMIT 1),
                    $default_cluster) AS cluster,
           coalesce(se.hostname, '') AS hostname,
           coalesce(se.gpu, '') AS gpu,
           coalesce(se.uuid, '') AS uuid,
           coalesce(se.socket, '') AS socket,
           coalesce(se.domain, '') AS domain,
           CASE WHEN se.source = 'wattprint'
                     AND se.kind IN ('job_energy', 'job_gpu_seconds', 'job_cpu_energy', 'job_cpu_seconds',
                                     'job_held_idle_energy', 'job_held_idle_seconds', 'job_equal_share_seconds')
                THEN se.job_id END AS job_id,
           nullif(se.model, '') AS model
    FROM series se
)
SELECT * EXCLUDE (model),
       -- one model per GPU (per CPU socket), whichever of its series carries it
       max(model) OVER (PARTITION BY host, cluster, hostname, gpu, uuid, socket) AS model,
       node_key(hostname) AS node,
       CASE WHEN NOT host THEN gpu_key(cluster, hostname, gpu, uuid) END AS gpu_key,
       dense_rank() OVER (ORDER BY source, kind, cluster, hostname, gpu, uuid, socket, domain,
                                   coalesce(job_id, '')) AS stream_id
FROM s
