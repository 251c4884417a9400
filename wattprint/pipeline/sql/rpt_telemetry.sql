-- What the reports read of the telemetry besides the result tables, over every month, open or closed: the rows
-- the build makes from the stored samples after the closed months (`wattprint compact`), and before them the rows
-- kept when those months were closed (their samples are gone). Table macros, called by rpt_gpu_gaps.sql,
-- rpt_gpu_stepped_back.sql and rpt_rapl.sql.
CREATE OR REPLACE TEMP MACRO closed_before() AS
    coalesce((SELECT max(month_ts) + INTERVAL 1 MONTH FROM closed_months), '-infinity'::TIMESTAMPTZ);
-- every GPU's telemetry gaps: gpu_key, start_ts, end_ts, cause
CREATE OR REPLACE TEMP MACRO gpu_gaps() AS TABLE
    SELECT s.gpu_key, g.start_ts, g.end_ts, g.cause
    FROM energy_gaps g JOIN streams s USING (stream_id)
    WHERE s.gpu_key IS NOT NULL AND g.end_ts > closed_before()
    UNION ALL
    SELECT gpu_key, start_ts, end_ts, cause FROM closed_gpu_gaps;
-- every GPU counter's stepbacks: gpu_key, start_ts, end_ts
CREATE OR REPLACE TEMP MACRO gpu_stepbacks() AS TABLE
    SELECT s.gpu_key, i.start_ts, i.end_ts
    FROM energy_intervals i JOIN streams s USING (stream_id)
    WHERE i.quality = 'counter_stepback' AND s.gpu_key IS NOT NULL AND i.end_ts > closed_before()
    UNION ALL
    SELECT gpu_key, start_ts, end_ts FROM closed_gpu_stepbacks;
-- every host's RAPL readability per hour: hour_ts, cluster, hostname, samples, readable_samples
CREATE OR REPLACE TEMP MACRO rapl_hours() AS TABLE
    SELECT hour_ts, cluster, hostname, samples, readable_samples FROM node_rapl_hour WHERE hour_ts >= closed_before()
    UNION ALL
    SELECT hour_ts, cluster, hostname, samples, readable_samples FROM closed_node_rapl_hour;
