-- The UTC hours [lo, hi) the ledger rows of the jobs in the temp table dirty_jobs (cluster, job_id) reach, as stored
-- now (dirty.py calls it before and after an import): each job's span (a running one: to the end of time), the
-- spans of its own streams (the exporter's job energy and CPU-time counters, its held-but-idle and equal-share
-- counters) and of the intervals dcgm's job label names it in. NULL: none.
WITH spans AS (
    SELECT epoch_us(start_ts) AS s_us, CASE WHEN end_ts IS NULL OR NOT isfinite(end_ts)
           THEN 9223372036854775807 ELSE epoch_us(end_ts) END AS e_us
    FROM jobs JOIN dirty_jobs USING (cluster, job_id)
    UNION ALL
    SELECT epoch_us(sp.start_ts), epoch_us(sp.end_ts)
    FROM stream_spans sp JOIN streams st USING (stream_id)
    JOIN dirty_jobs d ON d.cluster = st.cluster AND d.job_id = st.job_id
    UNION ALL
    SELECT min(c.hour_idx) * 3600000000, (max(c.hour_idx) + 1) * 3600000000
    FROM cpu_time_hour c JOIN streams st USING (stream_id)
    JOIN dirty_jobs d ON d.cluster = st.cluster AND d.job_id = st.job_id
    UNION ALL
    SELECT min(c.hour_idx) * 3600000000, (max(c.hour_idx) + 1) * 3600000000
    FROM gpu_held_idle_hour c JOIN streams st USING (stream_id)
    JOIN dirty_jobs d ON d.cluster = st.cluster AND d.job_id = st.job_id
    UNION ALL
    SELECT min(epoch_us(i.start_ts)), max(epoch_us(i.end_ts))
    FROM energy_intervals i JOIN streams st USING (stream_id)
    JOIN dirty_jobs d ON d.cluster = st.cluster AND d.job_id = i.label_job
    WHERE i.label_job IS NOT NULL
)
SELECT min(s_us) // 3600000000, max(e_us) // 3600000000 + 1 FROM spans
