-- The GPU-hours the report's GPU checks cover (report/gpu_checks.py): for a project report ($fleet false) the
-- (gpu_key, hour_ts) pairs of the scope's GPU rows, so it checks the GPUs its jobs used in the hours they used them;
-- for the all-projects report every GPU-hour of the window [$start, $end) (idle ones too).
CREATE OR REPLACE TEMP TABLE rpt_gpu_hours AS
SELECT DISTINCT gpu_key, hour_ts FROM rpt_rows WHERE NOT $fleet AND kind = 'gpu' AND gpu_key IS NOT NULL
UNION ALL
SELECT gpu_key, hour_ts FROM fct_gpu_hour WHERE $fleet AND hour_ts >= $start AND hour_ts < $end
