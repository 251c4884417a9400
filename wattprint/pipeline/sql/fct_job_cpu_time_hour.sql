-- CPU time (core-seconds of the job's cgroup) per (job, host, UTC hour), from the exporter's
-- wattprint_job_cpu_seconds_total counters with the same counter rules as energy (macros_counter_deltas.sql), cut at
-- hour boundaries pro rata by time, with the ledger's facts (jobs are matched on (cluster, job_id), as GPU rows).
-- CPU-hours of a phase are its rows' cpu_seconds / 3600; the reports also share host idle energy by them.
WITH d AS (
    SELECT stream_id, quality, amount, epoch_us(start_ts) AS s_us, epoch_us(end_ts) AS e_us
    FROM counter_deltas(['cpu_seconds'], $max_gap_s)
),
hourly AS (
    SELECT stream_id, h AS hour_idx, quality, exact_sum(amount * hour_share(s_us, e_us, h)) AS cpu_s
    FROM (SELECT *, unnest(hours_of(s_us, e_us)) AS h FROM d)
    GROUP BY ALL
)
SELECT to_timestamp(h.hour_idx * 3600) AS hour_ts,
       st.cluster, st.hostname, st.job_id,
       j.project,
       coalesce(j.phase, 'unclassified') AS phase,
       j.user_name,
       j.job_id IS NOT NULL AS in_ledger,
       h.cpu_s AS cpu_seconds,
       h.quality
FROM hourly h
JOIN streams st USING (stream_id)
LEFT JOIN jobs j ON j.cluster = st.cluster AND j.job_id = st.job_id
-- stored in a fixed order: the reports add these rows up in it, so equal results give equal reports
ORDER BY ALL
