-- Map each stored series onto a stream: one per (source, kind, cluster, host, GPU[, job]).
-- dcgm series that differ only by their hpc_job/pod label are one GPU stream, so the GPU's counter
-- stays continuous when the job on it changes. The cluster comes from the series' label, else the
-- first node pattern of the cluster config that matches the host, else the default cluster.
CREATE OR REPLACE TEMP TABLE series_stream AS
WITH s AS (
    SELECT se.series_id,
           se.source,
           se.kind AS series_kind,
           CASE se.kind WHEN 'job_energy' THEN 'job' WHEN 'idle_energy' THEN 'idle'
                        WHEN 'gpu_power' THEN 'gpu_power' ELSE 'gpu' END AS kind,
           coalesce(se.cluster,
                    (SELECT cn.cluster FROM cluster_nodes cn
                     WHERE coalesce(se.hostname, '') GLOB cn.pattern ORDER BY cn.ord LIMIT 1),
                    $default_cluster) AS cluster,
           coalesce(se.hostname, '') AS hostname,
           coalesce(se.gpu, '') AS gpu,
           coalesce(se.uuid, '') AS uuid,
           CASE WHEN se.source = 'wattprint' AND se.kind = 'job_energy' THEN se.job_id END AS job_id,
           nullif(se.model, '') AS model
    FROM series se
)
SELECT * EXCLUDE (model),
       -- one model per GPU, whichever of its series carries it
       max(model) OVER (PARTITION BY cluster, hostname, gpu, uuid) AS model,
       dense_rank() OVER (ORDER BY source, kind, cluster, hostname, gpu, uuid, coalesce(job_id, '')) AS stream_id
FROM s
