-- The ledger's allocations per node as segments: between two consecutive allocation changes of a node (a job
-- starting or ending there), one row per job allocated for the whole segment, or one row with job_id NULL for a
-- segment where no job held the node. Together a node's segments tile its time line from -infinity to infinity.
-- Nodes are joined by node key (sql/macros.sql), so the ledger's `gpu01` is the series' `GPU01.cluster.local`.
--  gpus:        the job's GPUs on that node (NULL: unknown, it holds the whole node)
--  seg_known:   the GPUs the segment's jobs with a known count hold, together
--  seg_unknown: how many of its jobs have an unknown count
-- A job with 0 GPUs on a node holds none of its GPUs. Read by int_hourly_pieces.sql (node_share) and
-- int_balance_pieces.sql (energy no exporter counter accounts for).
WITH
alloc AS (
    SELECT n.cluster, node_key(n.node) AS node, j.job_id, j.start_ts,
           coalesce(j.end_ts, 'infinity'::TIMESTAMPTZ) AS end_ts,
           max(n.gpus) AS gpus
    FROM job_nodes n
    JOIN jobs j USING (cluster, job_id)
    WHERE coalesce(n.gpus, 1) > 0 AND j.start_ts < coalesce(j.end_ts, 'infinity'::TIMESTAMPTZ)
    GROUP BY ALL        -- a ledger listing one node under two spellings holds it once
),
bounds AS (
    SELECT cluster, node, start_ts AS t FROM alloc
    UNION SELECT cluster, node, end_ts FROM alloc
    UNION SELECT DISTINCT cluster, node, '-infinity'::TIMESTAMPTZ FROM alloc
),
segs AS (
    SELECT cluster, node, t AS seg_start,
           coalesce(lead(t) OVER (PARTITION BY cluster, node ORDER BY t), 'infinity'::TIMESTAMPTZ) AS seg_end
    FROM bounds
    QUALIFY t < seg_end
),
jobs_in AS (
    SELECT s.cluster, s.node, s.seg_start, s.seg_end, a.job_id, a.gpus
    FROM segs s
    LEFT JOIN alloc a ON a.cluster = s.cluster AND a.node = s.node
                     AND a.start_ts <= s.seg_start AND a.end_ts >= s.seg_end
)
SELECT *,
       coalesce(sum(gpus) OVER (PARTITION BY cluster, node, seg_start), 0) AS seg_known,
       count(*) FILTER (WHERE job_id IS NOT NULL AND gpus IS NULL) OVER (PARTITION BY cluster, node, seg_start)
           AS seg_unknown
FROM jobs_in
