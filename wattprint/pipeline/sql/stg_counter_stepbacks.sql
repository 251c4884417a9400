-- Drops of the exporter's split counters (a job's or the idle part of a GPU, of a CPU socket's RAPL domain) that are
-- not restarts from 0. The parent counter (the GPU's, the socket's) bounds what the split counters can have counted
-- in the interval: if the value after the drop is more than the parent counted over the same time (restarted or
-- not), the drop is the counter stepping back (an exporter restored from a --state-file saved before its last
-- scraped values), and the interval counts nothing. Without a parent counter, the most a board draws bounds it
-- (2,000 W per GPU, 1,000 W per socket and domain, as in stg_counter_deltas.sql). model.py marks the intervals
-- listed here 'counter_stepback' with 0 energy; what the other split counters then count beyond the parent is taken
-- back in int_balance_pieces.sql.
CREATE OR REPLACE TEMP TABLE counter_stepbacks AS
WITH drops AS (
    SELECT i.stream_id, i.start_ts, i.end_ts, i.energy_j AS since_restart_j, st.parent_id, st.kind
    FROM energy_intervals i
    JOIN streams st USING (stream_id)
    WHERE i.quality IN ('counter_reset', 'gap_reset') AND st.kind IN ('job', 'idle', 'cpu_job', 'cpu_idle')
),
evidence AS (
    SELECT d.stream_id, d.end_ts, sum(p.energy_j) AS parent_j
    FROM drops d
    JOIN energy_intervals p ON p.stream_id = d.parent_id AND p.end_ts > d.start_ts AND p.end_ts <= d.end_ts
    GROUP BY ALL
)
SELECT d.stream_id, d.end_ts
FROM drops d
LEFT JOIN evidence e USING (stream_id, end_ts)
WHERE d.since_restart_j > coalesce(e.parent_j + 0.5 + 1e-6 * e.parent_j,
                                   CASE WHEN d.kind IN ('job', 'idle') THEN 2000.0 ELSE 1000.0 END
                                   * (epoch(d.end_ts) - epoch(d.start_ts)))
