-- GPUs of rpt_gpu_hours whose energy counter stepped back in one of those hours (an exporter restarted from a
-- state file saved before its last scraped values).
SELECT count(DISTINCT s.gpu_key) AS gpus
FROM energy_intervals i
JOIN streams s USING (stream_id)
WHERE i.quality = 'counter_stepback' AND s.gpu_key IS NOT NULL
  AND (s.gpu_key, to_timestamp(epoch(i.end_ts)::BIGINT // 3600 * 3600))
      IN (SELECT gpu_key, hour_ts FROM rpt_gpu_hours)
