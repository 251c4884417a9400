-- Energy counters -> energy per interval (the counter rules are in stg_counter_deltas.sql): GPU counters
-- (wattprint per job, idle and per GPU; dcgm per GPU) and the host's RAPL counters (per socket and domain:
-- the whole socket, its idle part, each job's part).
INSERT INTO energy_intervals (stream_id, start_ts, end_ts, energy_j, quality, label_job)
SELECT stream_id, start_ts, end_ts, amount, quality, label_job
FROM counter_deltas(['job', 'idle', 'gpu', 'cpu', 'cpu_idle', 'cpu_job'], $max_gap_s)
