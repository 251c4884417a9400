-- CPU time (core-seconds of the job's cgroup) per (job, host, UTC hour) (cpu_time_hour.sql), with the ledger's facts
-- (jobs are matched on (cluster, job_id), as GPU rows), for the hours this build makes ($out_lo_h, $out_hi_h).
-- CPU-hours of a phase are its rows' cpu_seconds / 3600; the reports also share host idle energy by them.
SELECT to_timestamp(h.hour_idx * 3600) AS hour_ts,
       st.cluster, st.hostname, st.job_id,
       j.project,
       coalesce(j.phase, 'unclassified') AS phase,
       j.user_name,
       j.job_id IS NOT NULL AS in_ledger,
       h.cpu_s AS cpu_seconds,
       h.quality
FROM cpu_time_hour h
JOIN streams st USING (stream_id)
LEFT JOIN jobs j ON j.cluster = st.cluster AND j.job_id = st.job_id
WHERE h.hour_idx >= $out_lo_h AND h.hour_idx < $out_hi_h
-- stored in a fixed order: the reports add these rows up in it, so equal results give equal reports
ORDER BY ALL
