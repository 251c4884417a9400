-- The rows a report reads: the scope's jobs, hour by hour, with each accounting layer beside the energy it comes
-- from. Three kinds of rows, every column present on each (0 or NULL where it does not apply):
--  kind 'gpu'       one (job, GPU, hour) of fct_job_gpu_hour
--     energy_j      the row's own GPU energy; gpu_g the same priced at its hour's intensity, before PUE
--     idle_j/_g     its share of the cluster-hour's idle and unallocated GPU energy (pro-rata policy): shared
--                   among the jobs that ran in that cluster-hour by their GPU-seconds; 0 under the separate policy
--     emb_g         embodied emissions: GPU-hours x the amortised rate of the GPU's model (temp table rpt_rates)
--  kind 'cpu'       one (job, host, socket, RAPL domain, hour) of fct_job_cpu_hour
--     cpu_j/_g      the job's own host energy (package or DRAM) and its emissions before PUE
--  kind 'cpu_time'  one (job, host, hour) of fct_job_cpu_time_hour
--     cpu_seconds   the job's CPU time (core-seconds)
--     cpu_idle_j/_g its share of the cluster-hour's host idle energy (RAPL energy no job's CPU time accounts for,
--                   package + DRAM of every socket of the cluster's hosts), shared among the jobs with CPU time
--                   in that cluster-hour by their CPU-seconds (pro-rata policy); 0 under the separate policy
--  kind 'node'      one (job, node, hour) of fct_job_node_hour: the job's share of the node residual (the BMC's node
--                   energy less the GPU boards and RAPL, fct_node_hour.sql)
--     node_j/_g     that share and its emissions before PUE
--     node_idle_j/_g its share of the cluster-hour's node idle (the residual no job's share of the node accounts
--                   for), shared among the jobs with a node share in that cluster-hour by those shares (pro-rata
--                   policy); 0 under the separate policy
--  pue_*            data-centre overhead: (PUE - 1) x each energy column beside it
-- Every figure of a report is a sum over these rows (or a ratio of two sums), so it traces back to fct rows.
-- Parameters: $start, $end (UTC, whole hours), $project (NULL: every project), $phases (empty: every phase),
-- $pro_rata (boolean).
CREATE OR REPLACE TEMP TABLE rpt_rows AS
WITH
f AS (
    SELECT * FROM fct_job_gpu_hour WHERE hour_ts >= $start AND hour_ts < $end
),
cluster_hour AS (
    SELECT cluster, hour_ts,
           coalesce(sum(energy_j) FILTER (WHERE job_id IS NULL), 0) AS idle_j,
           coalesce(sum(emissions_g(energy_j, intensity_g_per_kwh, 1.0)) FILTER (WHERE job_id IS NULL), 0) AS idle_g,
           coalesce(sum(gpu_seconds) FILTER (WHERE job_id IS NOT NULL), 0) AS job_s
    FROM f GROUP BY ALL
),
gpu_rows AS (
    SELECT 'gpu' AS kind, f.hour_ts, f.cluster, f.hostname, f.gpu, f.uuid, f.gpu_key,
           coalesce(f.gpu_model, '') AS gpu_model,
           NULL::VARCHAR AS socket, NULL::VARCHAR AS domain, NULL::VARCHAR AS cpu_model, f.job_id,
           f.project, f.phase, f.user_name, f.region, f.zone, f.attribution, f.energy_quality,
           f.intensity_quality, f.in_ledger, f.pue, f.intensity_g_per_kwh, f.energy_j, f.gpu_seconds,
           emissions_g(f.energy_j, f.intensity_g_per_kwh, 1.0) AS gpu_g,
           CASE WHEN $pro_rata AND ch.job_s > 0 THEN ch.idle_j * f.gpu_seconds / ch.job_s ELSE 0 END AS idle_j,
           CASE WHEN $pro_rata AND ch.job_s > 0 THEN ch.idle_g * f.gpu_seconds / ch.job_s ELSE 0 END AS idle_g,
           0.0 AS cpu_j, 0.0 AS cpu_g, 0.0 AS cpu_seconds, 0.0 AS cpu_idle_j, 0.0 AS cpu_idle_g
    FROM f JOIN cluster_hour ch USING (cluster, hour_ts)
    WHERE f.job_id IS NOT NULL
),
c AS (
    SELECT * FROM fct_job_cpu_hour WHERE hour_ts >= $start AND hour_ts < $end
),
host_idle AS (
    SELECT cluster, hour_ts,
           coalesce(sum(energy_j) FILTER (WHERE job_id IS NULL), 0) AS idle_j,
           coalesce(sum(emissions_g(energy_j, intensity_g_per_kwh, 1.0)) FILTER (WHERE job_id IS NULL), 0) AS idle_g,
           max(intensity_g_per_kwh) AS intensity_g_per_kwh,
           max(intensity_quality) AS intensity_quality
    FROM c GROUP BY ALL
),
t AS (
    SELECT * FROM fct_job_cpu_time_hour WHERE hour_ts >= $start AND hour_ts < $end
),
cpu_time_hour AS (
    SELECT cluster, hour_ts, sum(cpu_seconds) AS job_s FROM t GROUP BY ALL
),
cpu_rows AS (
    SELECT 'cpu' AS kind, c.hour_ts, c.cluster, c.hostname, NULL::VARCHAR AS gpu, NULL::VARCHAR AS uuid,
           NULL::VARCHAR AS gpu_model, c.socket, c.domain, coalesce(c.cpu_model, '') AS cpu_model, c.job_id,
           c.project, coalesce(c.phase, 'unclassified') AS phase, c.user_name, c.region, c.zone, c.attribution,
           c.energy_quality, c.intensity_quality, c.in_ledger, c.pue, c.intensity_g_per_kwh,
           0.0 AS energy_j, 0.0 AS gpu_seconds, 0.0 AS gpu_g, 0.0 AS idle_j, 0.0 AS idle_g,
           c.energy_j AS cpu_j, emissions_g(c.energy_j, c.intensity_g_per_kwh, 1.0) AS cpu_g,
           0.0 AS cpu_seconds, 0.0 AS cpu_idle_j, 0.0 AS cpu_idle_g
    FROM c
    WHERE c.job_id IS NOT NULL
),
n AS (
    SELECT * FROM fct_job_node_hour WHERE hour_ts >= $start AND hour_ts < $end
),
node_cluster_hour AS (
    SELECT cluster, hour_ts,
           coalesce(sum(CAST(energy_j AS DOUBLE)) FILTER (WHERE job_id IS NULL), 0) AS idle_j,
           coalesce(sum(emissions_g(CAST(energy_j AS DOUBLE), intensity_g_per_kwh, 1.0))
                    FILTER (WHERE job_id IS NULL), 0) AS idle_g,
           coalesce(sum(CAST(energy_j AS DOUBLE)) FILTER (WHERE job_id IS NOT NULL), 0) AS job_j
    FROM n GROUP BY ALL
),
node_rows AS (
    SELECT 'node' AS kind, n.hour_ts, n.cluster, n.hostname, NULL::VARCHAR AS gpu, NULL::VARCHAR AS uuid,
           NULL::VARCHAR AS gpu_model, NULL::VARCHAR AS socket, NULL::VARCHAR AS domain, NULL::VARCHAR AS cpu_model,
           n.job_id, n.project, coalesce(n.phase, 'unclassified') AS phase, n.user_name, n.region, n.zone,
           n.attribution, n.energy_quality, n.intensity_quality, n.in_ledger, n.pue, n.intensity_g_per_kwh,
           0.0 AS energy_j, 0.0 AS gpu_seconds, 0.0 AS gpu_g, 0.0 AS idle_j, 0.0 AS idle_g,
           0.0 AS cpu_j, 0.0 AS cpu_g, 0.0 AS cpu_seconds, 0.0 AS cpu_idle_j, 0.0 AS cpu_idle_g,
           CAST(n.energy_j AS DOUBLE) AS node_j,
           emissions_g(CAST(n.energy_j AS DOUBLE), n.intensity_g_per_kwh, 1.0) AS node_g,
           CASE WHEN $pro_rata AND nh.job_j > 0 THEN nh.idle_j * CAST(n.energy_j AS DOUBLE) / nh.job_j ELSE 0 END
               AS node_idle_j,
           CASE WHEN $pro_rata AND nh.job_j > 0 THEN nh.idle_g * CAST(n.energy_j AS DOUBLE) / nh.job_j ELSE 0 END
               AS node_idle_g
    FROM n
    JOIN node_cluster_hour nh USING (cluster, hour_ts)
    WHERE n.job_id IS NOT NULL
),
cpu_time_rows AS (
    SELECT 'cpu_time' AS kind, t.hour_ts, t.cluster, t.hostname, NULL::VARCHAR AS gpu, NULL::VARCHAR AS uuid,
           NULL::VARCHAR AS gpu_model, NULL::VARCHAR AS socket, NULL::VARCHAR AS domain, NULL::VARCHAR AS cpu_model,
           t.job_id, t.project, coalesce(t.phase, 'unclassified') AS phase, t.user_name, cl.region, cl.zone,
           'exporter' AS attribution, t.quality AS energy_quality, hi.intensity_quality, t.in_ledger,
           coalesce(cl.pue, 1.0) AS pue, hi.intensity_g_per_kwh,
           0.0 AS energy_j, 0.0 AS gpu_seconds, 0.0 AS gpu_g, 0.0 AS idle_j, 0.0 AS idle_g,
           0.0 AS cpu_j, 0.0 AS cpu_g, t.cpu_seconds,
           CASE WHEN $pro_rata AND th.job_s > 0 THEN coalesce(hi.idle_j, 0) * t.cpu_seconds / th.job_s ELSE 0 END
               AS cpu_idle_j,
           CASE WHEN $pro_rata AND th.job_s > 0 THEN coalesce(hi.idle_g, 0) * t.cpu_seconds / th.job_s ELSE 0 END
               AS cpu_idle_g
    FROM t
    JOIN cpu_time_hour th USING (cluster, hour_ts)
    LEFT JOIN host_idle hi USING (cluster, hour_ts)
    LEFT JOIN clusters cl ON cl.cluster = t.cluster
),
scoped AS (
    SELECT * FROM (SELECT * FROM gpu_rows UNION ALL BY NAME SELECT * FROM cpu_rows
                   UNION ALL BY NAME SELECT * FROM cpu_time_rows UNION ALL BY NAME SELECT * FROM node_rows)
    WHERE ($project IS NULL OR project = $project)
      AND (len(CAST($phases AS VARCHAR[])) = 0 OR list_contains(CAST($phases AS VARCHAR[]), phase))
)
SELECT s.* REPLACE (coalesce(s.node_j, 0.0) AS node_j, coalesce(s.node_g, 0.0) AS node_g,
                   coalesce(s.node_idle_j, 0.0) AS node_idle_j, coalesce(s.node_idle_g, 0.0) AS node_idle_g),
       (s.pue - 1) * s.energy_j AS pue_gpu_j,
       (s.pue - 1) * s.gpu_g AS pue_gpu_g,
       (s.pue - 1) * s.idle_j AS pue_idle_j,
       (s.pue - 1) * s.idle_g AS pue_idle_g,
       (s.pue - 1) * s.cpu_j AS pue_cpu_j,
       (s.pue - 1) * s.cpu_g AS pue_cpu_g,
       (s.pue - 1) * s.cpu_idle_j AS pue_cpu_idle_j,
       (s.pue - 1) * s.cpu_idle_g AS pue_cpu_idle_g,
       (s.pue - 1) * coalesce(s.node_j, 0.0) AS pue_node_j,
       (s.pue - 1) * coalesce(s.node_g, 0.0) AS pue_node_g,
       (s.pue - 1) * coalesce(s.node_idle_j, 0.0) AS pue_node_idle_j,
       (s.pue - 1) * coalesce(s.node_idle_g, 0.0) AS pue_node_idle_g,
       s.gpu_seconds / 3600.0 * coalesce(r.kg_per_gpu_hour, 0) * 1000.0 AS emb_g
FROM scoped s
LEFT JOIN rpt_rates r ON s.kind = 'gpu' AND r.cluster = s.cluster AND r.gpu_model = s.gpu_model
