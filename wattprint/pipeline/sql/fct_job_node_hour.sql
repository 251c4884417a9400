-- The node residual's attribution and price per (job or node idle, node, UTC hour), for the hours this build makes:
-- each node-hour's attributed_j (fct_node_hour.sql) shared among the jobs by their share of the node, the rest to
-- node idle (job_id NULL), so per node-hour, exactly (DECIMAL(38, 9)), jobs + idle == attributed_j.
--  gpu_seconds  (jobs held GPUs on the node in the hour) the jobs' part is the node's allocated share,
--               min(1, their allocated GPU-seconds / capacity_s), capacity_s = the node's GPUs x the seconds the BMC
--               read; each job gets that part by its allocated GPU-seconds: its GPU-seconds (fct_job_gpu_hour), on a
--               GPU whose jobs together held it longer than the BMC read (jobs sharing it in time) scaled down to
--               those seconds pro rata. The unallocated GPU-seconds are node idle.
--  cpu_seconds  (no job held a GPU; jobs had CPU time) the jobs' part is the share of the node's RAPL energy the
--               exporter split to jobs, i.e. their share of the node's CPU time (the exporter weighs each poll's
--               energy by the jobs' CPU time against the node's, wattprint/exporter/host/accounting.py: the pipeline
--               does not know the node's CPU count); each job gets that part by its CPU-seconds
--               (fct_job_cpu_time_hour).
--  idle         the rest; all of it when no job ran (basis none)
-- The split is in integer nanojoules: the jobs' part and each job's share of it are rounded down, so the few
-- nanojoules of rounding stay with node idle and nothing is created.
-- Priced like every result row (int_priced_pieces.sql): emissions_g = energy_j / 3.6e6 x PUE x the hour's intensity
-- of the cluster's zone. The node residual excludes the GPU boards and RAPL, so the PUE overhead on it never counts
-- a joule of the gpu or cpu layer twice.
WITH
n AS (
    SELECT *, epoch_us(hour_ts) // 3600000000 AS hour_idx,
           CAST(attributed_j * 1000000000 AS HUGEINT) AS a_nj
    FROM fct_node_hour
    WHERE attributed_j > 0
      AND hour_ts >= to_timestamp($out_lo_h::BIGINT * 3600) AND hour_ts < to_timestamp($out_hi_h::BIGINT * 3600)
),
held AS (
    -- each job's GPU-seconds on each GPU of the node in the hour
    SELECT cluster, node_key(hostname) AS node, epoch_us(hour_ts) // 3600000000 AS hour_idx, gpu_key, job_id,
           sum(exact(gpu_seconds)) AS s
    FROM fct_job_gpu_hour
    WHERE job_id IS NOT NULL
      AND hour_ts >= to_timestamp($out_lo_h::BIGINT * 3600) AND hour_ts < to_timestamp($out_hi_h::BIGINT * 3600)
    GROUP BY ALL
),
allocated AS (
    -- a GPU is allocated once: jobs sharing it in time each hold it the whole time, so where its jobs' GPU-seconds
    -- exceed the seconds the BMC read, they are scaled down pro rata to those seconds (a GPU shared by two jobs
    -- weighs as much as one held by one job, and unallocated GPUs stay node idle)
    SELECT h.cluster, h.node, h.hour_idx, h.job_id, h.s, sum(h.s) OVER gpu AS gpu_s, n.covered_s
    FROM held h
    JOIN n USING (cluster, node, hour_idx)
    WINDOW gpu AS (PARTITION BY h.cluster, h.node, h.hour_idx, h.gpu_key)
),
w AS (
    SELECT cluster, node, hour_idx, job_id, 'gpu_seconds' AS basis,
           sum(CASE WHEN gpu_s > exact(covered_s) THEN exact(s * exact(covered_s) / gpu_s) ELSE s END) AS w_s
    FROM allocated
    GROUP BY ALL
    UNION ALL
    SELECT cluster, node_key(hostname), epoch_us(hour_ts) // 3600000000, job_id, 'cpu_seconds', sum(exact(cpu_seconds))
    FROM fct_job_cpu_time_hour
    WHERE hour_ts >= to_timestamp($out_lo_h::BIGINT * 3600) AND hour_ts < to_timestamp($out_hi_h::BIGINT * 3600)
    GROUP BY ALL
),
jw AS (
    -- each job's weight (nanoseconds of GPU or CPU time) and the node-hour's total
    SELECT n.cluster, n.node, n.hour_idx, w.job_id, CAST(w.w_s * 1000000000 AS HUGEINT) AS w_ns,
           sum(CAST(w.w_s * 1000000000 AS HUGEINT)) OVER (PARTITION BY n.cluster, n.node, n.hour_idx) AS sum_ns
    FROM n
    JOIN w ON w.cluster = n.cluster AND w.node = n.node AND w.hour_idx = n.hour_idx AND w.basis = n.basis
    WHERE w.w_s > 0
),
pool AS (
    -- the jobs' part of each node-hour's attributed energy, nanojoules: a_nj x num // den (num <= den)
    SELECT n.cluster, n.node, n.hour_idx,
           CASE n.basis
               WHEN 'gpu_seconds' THEN
                   n.a_nj * least(t.sum_ns, greatest(CAST(exact(n.capacity_s) * 1000000000 AS HUGEINT), t.sum_ns))
                   // greatest(CAST(exact(n.capacity_s) * 1000000000 AS HUGEINT), t.sum_ns)
               WHEN 'cpu_seconds' THEN
                   n.a_nj * CAST(least(n.rapl_jobs_j, n.rapl_j) * 1000000000 AS HUGEINT)
                   // CAST(n.rapl_j * 1000000000 AS HUGEINT)
           END AS jobs_nj
    FROM n
    JOIN (SELECT DISTINCT cluster, node, hour_idx, sum_ns FROM jw) t USING (cluster, node, hour_idx)
),
parts AS (
    SELECT jw.cluster, jw.node, jw.hour_idx, jw.job_id, jw.w_ns, p.jobs_nj * jw.w_ns // jw.sum_ns AS part_nj
    FROM jw JOIN pool p USING (cluster, node, hour_idx)
),
pieces AS (
    SELECT p.cluster, p.node, p.hour_idx, p.job_id, n.basis AS attribution, p.w_ns / 1e9 AS basis_s,
           p.part_nj AS energy_nj
    FROM parts p JOIN n USING (cluster, node, hour_idx)
    UNION ALL
    SELECT n.cluster, n.node, n.hour_idx, NULL, 'idle', 0.0, n.a_nj - coalesce(s.jobs_nj, 0)
    FROM n
    LEFT JOIN (SELECT cluster, node, hour_idx, sum(part_nj) AS jobs_nj FROM parts GROUP BY ALL) s
      USING (cluster, node, hour_idx)
),
x AS (
    SELECT *, CAST(CAST(energy_nj AS DECIMAL(38, 0)) * 0.000000001 AS DECIMAL(38, 9)) AS energy_j
    FROM pieces
    WHERE job_id IS NOT NULL OR energy_nj <> 0
)
SELECT to_timestamp(x.hour_idx * 3600) AS hour_ts, x.cluster, n.hostname, x.node, x.job_id,
       j.project,
       CASE WHEN x.job_id IS NULL THEN NULL ELSE coalesce(j.phase, 'unclassified') END AS phase,
       j.user_name, c.region, c.zone, x.attribution, x.basis_s,
       n.node_quality AS energy_quality,
       r.quality AS intensity_quality,
       j.job_id IS NOT NULL AS in_ledger,
       x.energy_j,
       coalesce(c.pue, 1.0) AS pue,
       r.g_per_kwh AS intensity_g_per_kwh,
       emissions_g(CAST(x.energy_j AS DOUBLE), r.g_per_kwh, coalesce(c.pue, 1.0)) AS emissions_g
FROM x
JOIN n USING (cluster, node, hour_idx)
LEFT JOIN clusters c ON c.cluster = x.cluster
LEFT JOIN jobs j ON j.cluster = x.cluster AND j.job_id = x.job_id
JOIN int_intensity_resolved r ON r.zone = coalesce(c.zone, '') AND r.hour_idx = x.hour_idx
-- stored in a fixed order: the reports add these rows up in it, so equal results give equal reports
ORDER BY ALL
