-- Energy per interval between two samples of one stream (a GPU, a job on a GPU or idle, a CPU socket's RAPL
-- domain, a job's or idle part of it): the energy counters' (stg_counter_intervals.sql, exact) and the power
-- gauges' (stg_power_intervals.sql, integrated) together.
--  quality    counter | counter_reset | counter_stepback | first_sample | gap | gap_reset | power_integrated
--  label_job  dcgm's hpc_job / pod label at the interval's end sample
SELECT stream_id, start_ts, end_ts, energy_j, quality, label_job FROM stg_counter_intervals
UNION ALL
SELECT stream_id, start_ts, end_ts, energy_j, quality, label_job FROM stg_power_intervals
