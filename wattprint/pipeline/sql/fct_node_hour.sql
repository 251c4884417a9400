-- The node residual per (cluster, node, UTC hour), for the hours this build makes ($out_lo_h, $out_hi_h): the BMC's
-- whole-node energy (node_hour.sql) against what the other layers price on that node in that hour, its GPU boards
-- (fct_job_gpu_hour: jobs, idle, unallocated) and its CPU sockets' RAPL domains (fct_job_cpu_hour: jobs, host idle,
-- unallocated). Energies are exact decimals (DECIMAL(38, 9): nanojoules), so per node-hour, exactly,
--     node_j = gpu_j + rapl_j + residual_j
-- The residual is what the BMC measured and no GPU or RAPL counter did: fans, NICs, disks, the board, the PSU's
-- losses (and the CPUs themselves on a node without RAPL: rapl_read false).
-- Never clamped silently: where the BMC read less than the GPUs and RAPL together (sensors disagree), residual_j is
-- negative as read, deficit_j = -residual_j, and attributed_j (what fct_job_node_hour.sql shares among the jobs and
-- node idle) is 0; below_gpu marks the hours the BMC read less than the GPU boards alone. The reports list both.
-- Rows: every node-hour with BMC data; and, once any node has BMC data, every node-hour of the other layers without
-- it (node_j NULL: the node layer is absent there, and the reports count those hours).
--  reading_kind   counter | power (node_hour.sql: the kept reading; power: the gauge integrated, a counted fallback)
--  gpus           the node's GPUs with energy in the hour (fct_job_gpu_hour)
--  capacity_s     the GPU-seconds the node could have allocated while the BMC read it: gpus x covered_s
--  job_gpu_s      the jobs' GPU-seconds on the node in the hour; job_cpu_s their CPU-seconds (fct_job_cpu_time_hour)
--  rapl_jobs_j    of rapl_j, what the exporter split to jobs (by their share of the node's CPU time)
--  basis          how attributed_j is shared (fct_job_node_hour.sql): gpu_seconds (jobs held GPUs in the hour),
--                 cpu_seconds (none did; jobs had CPU time and RAPL was read), none (no job: all node idle)
WITH
bmc AS (
    SELECT * FROM node_hour WHERE hour_idx >= $out_lo_h AND hour_idx < $out_hi_h
),
gpu AS (
    SELECT cluster, node_key(hostname) AS node, epoch_us(hour_ts) // 3600000000 AS hour_idx,
           min(hostname) AS hostname, sum(exact(energy_j)) AS gpu_j, count(DISTINCT gpu_key) AS gpus,
           coalesce(sum(exact(gpu_seconds)) FILTER (WHERE job_id IS NOT NULL), 0) AS job_gpu_s
    FROM fct_job_gpu_hour
    WHERE EXISTS (SELECT 1 FROM node_hour)
      AND hour_ts >= to_timestamp($out_lo_h::BIGINT * 3600) AND hour_ts < to_timestamp($out_hi_h::BIGINT * 3600)
    GROUP BY ALL
),
rapl AS (
    SELECT cluster, node_key(hostname) AS node, epoch_us(hour_ts) // 3600000000 AS hour_idx,
           min(hostname) AS hostname, sum(exact(energy_j)) AS rapl_j,
           coalesce(sum(exact(energy_j)) FILTER (WHERE job_id IS NOT NULL), 0) AS rapl_jobs_j
    FROM fct_job_cpu_hour
    WHERE EXISTS (SELECT 1 FROM node_hour)
      AND hour_ts >= to_timestamp($out_lo_h::BIGINT * 3600) AND hour_ts < to_timestamp($out_hi_h::BIGINT * 3600)
    GROUP BY ALL
),
cpu AS (
    SELECT cluster, node_key(hostname) AS node, epoch_us(hour_ts) // 3600000000 AS hour_idx,
           sum(exact(cpu_seconds)) AS job_cpu_s
    FROM fct_job_cpu_time_hour
    WHERE EXISTS (SELECT 1 FROM node_hour)
      AND hour_ts >= to_timestamp($out_lo_h::BIGINT * 3600) AND hour_ts < to_timestamp($out_hi_h::BIGINT * 3600)
    GROUP BY ALL
),
keys AS (
    SELECT cluster, node, hour_idx FROM bmc
    UNION SELECT cluster, node, hour_idx FROM gpu
    UNION SELECT cluster, node, hour_idx FROM rapl
),
x AS (
    SELECT k.cluster, k.node, k.hour_idx,
           coalesce(g.hostname, r.hostname, host_part(b.hostname)) AS hostname,
           b.reading_kind, b.reading, b.quality AS node_quality, b.covered_s,
           exact(b.energy_j) AS node_j,
           coalesce(g.gpu_j, exact(0)) AS gpu_j,
           coalesce(r.rapl_j, exact(0)) AS rapl_j,
           r.rapl_j IS NOT NULL AS rapl_read,
           coalesce(r.rapl_jobs_j, exact(0)) AS rapl_jobs_j,
           coalesce(g.gpus, 0) AS gpus,
           coalesce(g.job_gpu_s, exact(0)) AS job_gpu_s,
           coalesce(c.job_cpu_s, exact(0)) AS job_cpu_s
    FROM keys k
    LEFT JOIN bmc b USING (cluster, node, hour_idx)
    LEFT JOIN gpu g USING (cluster, node, hour_idx)
    LEFT JOIN rapl r USING (cluster, node, hour_idx)
    LEFT JOIN cpu c USING (cluster, node, hour_idx)
),
d AS (
    SELECT *, node_j - gpu_j - rapl_j AS residual_j FROM x
)
SELECT to_timestamp(hour_idx * 3600) AS hour_ts, cluster, hostname, node,
       reading_kind, reading, node_quality, covered_s,
       node_j, gpu_j, rapl_j, residual_j,
       greatest(residual_j, exact(0)) AS attributed_j,
       greatest(-residual_j, exact(0)) AS deficit_j,
       node_j < gpu_j AS below_gpu,
       rapl_read, rapl_jobs_j, gpus,
       gpus * covered_s AS capacity_s,
       job_gpu_s, job_cpu_s,
       CASE WHEN node_j IS NULL THEN NULL
            WHEN job_gpu_s > 0 THEN 'gpu_seconds'
            WHEN job_cpu_s > 0 AND rapl_jobs_j > 0 THEN 'cpu_seconds'
            ELSE 'none' END AS basis
FROM d
-- stored in a fixed order: the reports add these rows up in it, so equal results give equal reports
ORDER BY ALL
