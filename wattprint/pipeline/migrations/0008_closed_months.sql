-- wattprint schema v8: closed months (`wattprint compact`). Forward-only, like 0001.
-- Compaction deletes the samples of whole UTC months older than the retention (--keep-samples-days) and keeps, as
-- stored facts, what the reports read of those months besides the result tables (whose rows of a closed month are
-- kept and never rebuilt again): the GPUs' telemetry gaps, the counters' stepbacks and the hosts' RAPL readability.
-- They are keyed by GPU (gpu_key) and host, not by stream_id: stream ids are renumbered as series come and go.
CREATE TABLE closed_months (
    month_ts        TIMESTAMPTZ PRIMARY KEY,   -- the month's first instant (UTC)
    closed_at       TIMESTAMPTZ NOT NULL,
    keep_samples_days INTEGER NOT NULL,        -- the retention the compaction ran with
    samples_deleted BIGINT NOT NULL,           -- samples of this compaction (counted on its last month's row)
    settings_sha256 VARCHAR                    -- the build settings its results were made with
);
CREATE TABLE closed_gpu_gaps (
    gpu_key  VARCHAR NOT NULL,
    start_ts TIMESTAMPTZ NOT NULL,
    end_ts   TIMESTAMPTZ NOT NULL,
    cause    VARCHAR NOT NULL                  -- counter | counter_restart | power (energy_gaps.sql)
);
CREATE TABLE closed_gpu_stepbacks (
    gpu_key  VARCHAR NOT NULL,
    start_ts TIMESTAMPTZ NOT NULL,
    end_ts   TIMESTAMPTZ NOT NULL
);
CREATE TABLE closed_node_rapl_hour (
    hour_ts          TIMESTAMPTZ NOT NULL,
    cluster          VARCHAR,
    hostname         VARCHAR,
    samples          BIGINT NOT NULL,
    readable_samples BIGINT NOT NULL
);
