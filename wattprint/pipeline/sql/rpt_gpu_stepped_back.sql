-- GPUs of rpt_gpu_hours whose energy counter stepped back in one of those hours (an exporter restarted from a
-- state file saved before its last scraped values).
SELECT count(DISTINCT i.gpu_key) AS gpus
FROM gpu_stepbacks() i                         -- rpt_telemetry.sql: the built intervals and the closed months' kept ones
WHERE (i.gpu_key, to_timestamp(epoch(i.end_ts)::BIGINT // 3600 * 3600))
      IN (SELECT gpu_key, hour_ts FROM rpt_gpu_hours)
