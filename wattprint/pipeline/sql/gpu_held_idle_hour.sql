-- Per job's energy stream and UTC hour, what the exporter's shared-GPU counters counted: the part of the job's energy
-- from poll intervals in which the GPU (or MIG instance) it held was idle (wattprint_job_held_idle_energy_joules_total,
-- held_idle_j) and the held time of those intervals (wattprint_job_held_idle_seconds_total, held_idle_s), and the held
-- time of intervals in which its GPU's split fell back to equal shares (wattprint_job_equal_share_seconds_total,
-- equal_share_s). The counter rules are the energy's (macros_counter_deltas.sql), cut at hours pro rata by time, as
-- gpu_held_hour.sql. Not energy of its own: the held-idle joules are already inside the job's energy, so they are
-- never in energy_intervals and never priced twice (fct_job_gpu_held_idle_hour.sql prices them beside it).
WITH d AS (
    SELECT st.parent_id AS stream_id, st.kind, c.amount, epoch_us(c.start_ts) AS s_us, epoch_us(c.end_ts) AS e_us
    FROM counter_deltas(['held_idle', 'held_idle_seconds', 'equal_share_seconds'], $max_gap_s) c
    JOIN streams st USING (stream_id)
    WHERE st.parent_id IS NOT NULL AND c.amount <> 0
)
SELECT stream_id, h AS hour_idx,
       exact_sum(CASE WHEN kind = 'held_idle' THEN amount * hour_share(s_us, e_us, h) ELSE 0 END) AS held_idle_j,
       exact_sum(CASE WHEN kind = 'held_idle_seconds' THEN amount * hour_share(s_us, e_us, h) ELSE 0 END) AS held_idle_s,
       exact_sum(CASE WHEN kind = 'equal_share_seconds' THEN amount * hour_share(s_us, e_us, h) ELSE 0 END)
           AS equal_share_s
FROM (SELECT *, unnest(hours_of(s_us, e_us)) AS h FROM d)
GROUP BY ALL
