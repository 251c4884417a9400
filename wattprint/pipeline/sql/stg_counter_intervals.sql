-- Energy counters -> energy per interval (the counter rules are in macros_counter_deltas.sql): GPU counters
-- (wattprint per job, idle and per GPU; dcgm per GPU) and the host's RAPL counters (per socket and domain:
-- the whole socket, its idle part, each job's part).
-- Drops of the exporter's split counters (a job's or the idle part of a GPU, of a CPU socket's RAPL domain) that are
-- not restarts from 0 are stepbacks. The parent counter (the GPU's, the socket's) bounds what the split counters can
-- have counted in the interval: if the value after the drop is more than the parent counted over the same time
-- (restarted or not), the drop is the counter stepping back (an exporter restored from a --state-file saved before
-- its last scraped values), and the interval counts nothing: 'counter_stepback', 0 J. Without a parent counter, the
-- most a board draws bounds it (2,000 W per GPU, 1,000 W per socket and domain, as in macros_counter_deltas.sql).
-- What the other split counters then count beyond the parent is taken back in int_balance_pieces.sql.
WITH
counted AS (
    SELECT stream_id, start_ts, end_ts, amount AS energy_j, quality, label_job
    FROM counter_deltas(['job', 'idle', 'gpu', 'cpu', 'cpu_idle', 'cpu_job'], $max_gap_s)
),
drops AS (
    SELECT i.stream_id, i.start_ts, i.end_ts, i.energy_j AS since_restart_j, st.parent_id, st.kind
    FROM counted i
    JOIN streams st USING (stream_id)
    WHERE i.quality IN ('counter_reset', 'gap_reset') AND st.kind IN ('job', 'idle', 'cpu_job', 'cpu_idle')
),
evidence AS (
    SELECT d.stream_id, d.end_ts, exact_sum(p.energy_j) AS parent_j
    FROM drops d
    JOIN counted p ON p.stream_id = d.parent_id AND p.end_ts > d.start_ts AND p.end_ts <= d.end_ts
    GROUP BY ALL
),
stepbacks AS (
    SELECT d.stream_id, d.end_ts
    FROM drops d
    LEFT JOIN evidence e USING (stream_id, end_ts)
    WHERE d.since_restart_j > coalesce(e.parent_j + 0.5 + 1e-6 * e.parent_j,
                                       CASE WHEN d.kind IN ('job', 'idle') THEN 2000.0 ELSE 1000.0 END
                                       * (epoch(d.end_ts) - epoch(d.start_ts)))
)
SELECT c.stream_id, c.start_ts, c.end_ts,
       CASE WHEN s.stream_id IS NULL THEN c.energy_j ELSE 0 END::DOUBLE AS energy_j,
       CASE WHEN s.stream_id IS NULL THEN c.quality ELSE 'counter_stepback' END AS quality,
       c.label_job
FROM counted c
LEFT JOIN stepbacks s USING (stream_id, end_ts)
