-- wattprint schema v3: host (CPU package and DRAM) energy from RAPL, next to GPU energy. Forward-only.
--  series.socket / series.domain:  the exporter's `socket` and `domain` labels of the CPU series
--  streams.socket / streams.domain: the same on each stream ('' for GPU streams)
--  fct_job_cpu_hour:                host energy per (job or host idle, socket, domain, UTC hour), priced like
--                                   fct_job_gpu_hour
--  fct_job_cpu_time_hour:           CPU time of each job per host and UTC hour (cgroup usage), for CPU-hours
--  node_rapl_hour:                  per host and UTC hour, how many samples said RAPL was readable, for data quality
ALTER TABLE series ADD COLUMN socket VARCHAR;
ALTER TABLE series ADD COLUMN domain VARCHAR;
ALTER TABLE streams ADD COLUMN socket VARCHAR;
ALTER TABLE streams ADD COLUMN domain VARCHAR;

CREATE TABLE fct_job_cpu_hour (
    hour_ts             TIMESTAMPTZ NOT NULL,
    cluster             VARCHAR NOT NULL,
    hostname            VARCHAR NOT NULL,
    socket              VARCHAR NOT NULL,
    domain              VARCHAR NOT NULL,  -- package | dram
    job_id              VARCHAR,           -- NULL: host idle (energy no job's CPU time accounts for)
    project             VARCHAR,
    phase               VARCHAR,
    user_name           VARCHAR,
    region              VARCHAR,
    zone                VARCHAR,
    attribution         VARCHAR NOT NULL,  -- exporter | idle
    energy_quality      VARCHAR NOT NULL,  -- counter | counter_reset | first_sample | gap
    intensity_quality   VARCHAR NOT NULL,
    in_ledger           BOOLEAN NOT NULL,
    energy_j            DOUBLE NOT NULL,
    pue                 DOUBLE NOT NULL,
    intensity_g_per_kwh DOUBLE NOT NULL,
    emissions_g         DOUBLE NOT NULL,   -- energy_j / 3.6e6 * pue * intensity_g_per_kwh
    cpu_model           VARCHAR
);

CREATE TABLE fct_job_cpu_time_hour (
    hour_ts      TIMESTAMPTZ NOT NULL,
    cluster      VARCHAR NOT NULL,
    hostname     VARCHAR NOT NULL,
    job_id       VARCHAR NOT NULL,
    project      VARCHAR,
    phase        VARCHAR,
    user_name    VARCHAR,
    in_ledger    BOOLEAN NOT NULL,
    cpu_seconds  DOUBLE NOT NULL,          -- CPU time (core-seconds) the job's cgroup used on the host
    quality      VARCHAR NOT NULL          -- counter | counter_reset | first_sample | gap
);

CREATE TABLE node_rapl_hour (
    hour_ts          TIMESTAMPTZ NOT NULL,
    cluster          VARCHAR NOT NULL,
    hostname         VARCHAR NOT NULL,
    samples          BIGINT NOT NULL,      -- wattprint_cpu_rapl_up samples in the hour
    readable_samples BIGINT NOT NULL       -- of which said 1 (every RAPL zone read)
);
