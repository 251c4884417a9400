-- The rows a report reads: every (job, GPU, hour) of the scope, with each accounting layer beside it.
--  gpu_g     the row's own GPU energy priced at its hour's intensity, before PUE
--  idle_j/_g its share of the cluster-hour's idle and unallocated GPU energy (pro-rata policy): shared among
--            the jobs that ran in that cluster-hour by their GPU-seconds; 0 under the separate policy
--  pue_*     data-centre overhead, (PUE - 1) x the row's GPU energy and x its idle share
--  emb_g     embodied emissions: GPU-hours x the amortised rate of the GPU's model (temp table rpt_rates)
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
           coalesce(sum(energy_j * intensity_g_per_kwh) FILTER (WHERE job_id IS NULL), 0) / 3600000.0 AS idle_g,
           coalesce(sum(gpu_seconds) FILTER (WHERE job_id IS NOT NULL), 0) AS job_s
    FROM f GROUP BY ALL
),
scoped AS (
    SELECT f.hour_ts, f.cluster, f.hostname, f.gpu, f.uuid, coalesce(f.gpu_model, '') AS gpu_model, f.job_id,
           f.project, f.phase, f.user_name, f.region, f.zone, f.attribution, f.energy_quality,
           f.intensity_quality, f.in_ledger, f.pue, f.intensity_g_per_kwh, f.energy_j, f.gpu_seconds,
           f.energy_j * f.intensity_g_per_kwh / 3600000.0 AS gpu_g,
           CASE WHEN $pro_rata AND ch.job_s > 0 THEN ch.idle_j * f.gpu_seconds / ch.job_s ELSE 0 END AS idle_j,
           CASE WHEN $pro_rata AND ch.job_s > 0 THEN ch.idle_g * f.gpu_seconds / ch.job_s ELSE 0 END AS idle_g
    FROM f JOIN cluster_hour ch USING (cluster, hour_ts)
    WHERE f.job_id IS NOT NULL
      AND ($project IS NULL OR f.project = $project)
      AND (len(CAST($phases AS VARCHAR[])) = 0 OR list_contains(CAST($phases AS VARCHAR[]), f.phase))
)
SELECT s.*,
       (s.pue - 1) * s.energy_j AS pue_gpu_j,
       (s.pue - 1) * s.gpu_g AS pue_gpu_g,
       (s.pue - 1) * s.idle_j AS pue_idle_j,
       (s.pue - 1) * s.idle_g AS pue_idle_g,
       s.gpu_seconds / 3600.0 * coalesce(r.kg_per_gpu_hour, 0) * 1000.0 AS emb_g
FROM scoped s
LEFT JOIN rpt_rates r ON r.cluster = s.cluster AND r.gpu_model = s.gpu_model
