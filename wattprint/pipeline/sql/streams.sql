-- Streams: one row per stream of stg_series_stream, with its parent: for the exporter's split streams (a GPU's job
-- and idle counters, a CPU socket's job and idle counters per RAPL domain) the total counter they split (the
-- GPU's, the socket's), which bounds what they can have counted in any interval (stg_counter_intervals.sql) and
-- which they must add up to (int_balance_pieces.sql); for a job's held-GPU-time counter and its held-but-idle and
-- equal-share counters (gpu_held_idle_hour.sql), its energy stream.
WITH st AS (
    SELECT DISTINCT stream_id, source, kind, cluster, hostname, gpu, uuid, job_id, model, socket, domain, node, gpu_key
    FROM stg_series_stream
)
SELECT c.*,
       CASE WHEN c.source = 'wattprint' AND c.kind IN ('job', 'idle', 'cpu_job', 'cpu_idle')
            THEN (SELECT min(p.stream_id) FROM st p
                  WHERE p.source = 'wattprint' AND p.kind = CASE WHEN c.kind IN ('job', 'idle') THEN 'gpu' ELSE 'cpu' END
                    AND p.cluster = c.cluster AND p.hostname = c.hostname AND p.gpu = c.gpu AND p.uuid = c.uuid
                    AND p.socket = c.socket AND p.domain = c.domain)
            WHEN c.kind IN ('gpu_seconds', 'held_idle', 'held_idle_seconds', 'equal_share_seconds')
            THEN (SELECT min(p.stream_id) FROM st p
                  WHERE p.source = c.source AND p.kind = 'job' AND p.cluster = c.cluster AND p.hostname = c.hostname
                    AND p.gpu = c.gpu AND p.uuid = c.uuid AND p.job_id = c.job_id)
       END AS parent_id
FROM st c
