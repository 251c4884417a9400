-- CPU time (core-seconds of a job's cgroup) per (job's CPU-time stream, UTC hour), from the exporter's
-- wattprint_job_cpu_seconds_total counters with the same counter rules as energy (macros_counter_deltas.sql), cut at
-- hour boundaries pro rata by time. fct_job_cpu_time_hour.sql adds the ledger's facts.
WITH d AS (
    SELECT stream_id, quality, amount, epoch_us(start_ts) AS s_us, epoch_us(end_ts) AS e_us
    FROM counter_deltas(['cpu_seconds'], $max_gap_s)
)
SELECT stream_id, h AS hour_idx, quality, exact_sum(amount * hour_share(s_us, e_us, h)) AS cpu_s
FROM (SELECT *, unnest(hours_of(s_us, e_us)) AS h FROM d)
GROUP BY ALL
