-- wattprint schema v1. Forward-only: never edit this file after it lands; add 0002_*.sql instead.
-- Units are in the column names: *_ts are UTC instants, *_j joules, *_g grams, *_g_per_kwh gCO2eq/kWh.

-- One row per distinct series pulled from Prometheus (kind + full label set).
CREATE SEQUENCE series_id_seq START 1;
CREATE TABLE series (
    series_id   BIGINT PRIMARY KEY,
    source      VARCHAR NOT NULL,      -- wattprint | dcgm | power
    kind        VARCHAR NOT NULL,      -- job_energy | gpu_energy | idle_energy | gpu_power
    query       VARCHAR NOT NULL,      -- '<endpoint> <PromQL>' that first loaded it (re-ingests replace by it)
    fingerprint VARCHAR NOT NULL UNIQUE,
    cluster     VARCHAR,               -- the cluster label, when the series has one
    hostname    VARCHAR,
    gpu         VARCHAR,
    uuid        VARCHAR,
    job_id      VARCHAR,               -- wattprint per-job counter, or dcgm hpc_job / pod label
    labels      JSON NOT NULL
);

-- Raw values at each query step: joules for counters (dcgm mJ converted on ingest), watts for gauges.
-- No primary key on purpose: an ART index over hundreds of millions of rows costs more than the
-- delete-then-insert per (query, window) that keeps loads idempotent.
CREATE TABLE samples (
    series_id BIGINT NOT NULL,
    ts        TIMESTAMPTZ NOT NULL,
    value     DOUBLE NOT NULL
);

-- What has been ingested: drives the "counter first seen inside a window" rule and data quality.
CREATE TABLE ingest_coverage (
    kind       VARCHAR NOT NULL,
    query      VARCHAR NOT NULL,       -- '<endpoint> <PromQL>'
    start_ts   TIMESTAMPTZ NOT NULL,
    end_ts     TIMESTAMPTZ NOT NULL,
    step_s     INTEGER NOT NULL,
    series     INTEGER NOT NULL,
    samples    BIGINT NOT NULL,
    endpoint   VARCHAR NOT NULL,       -- URL without credentials
    loaded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The job ledger.
CREATE TABLE jobs (
    cluster     VARCHAR NOT NULL,
    job_id      VARCHAR NOT NULL,
    project     VARCHAR NOT NULL,
    phase       VARCHAR NOT NULL,
    user_name   VARCHAR,
    name        VARCHAR,
    account     VARCHAR,
    start_ts    TIMESTAMPTZ NOT NULL,
    end_ts      TIMESTAMPTZ,           -- NULL: still running
    source      VARCHAR NOT NULL,      -- csv | yaml | sacct-json | sacct-parsable | kubernetes
    origin      VARCHAR NOT NULL,      -- file:line it came from
    imported_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster, job_id)
);

CREATE TABLE job_nodes (
    cluster VARCHAR NOT NULL,
    job_id  VARCHAR NOT NULL,
    node    VARCHAR NOT NULL,
    gpus    INTEGER,                   -- GPUs on this node; NULL: unknown, treated as the whole node
    PRIMARY KEY (cluster, job_id, node)
);

-- Hourly grid carbon intensity (sub-hourly sources are time-weighted into their hour on import).
CREATE TABLE intensity_hourly (
    zone         VARCHAR NOT NULL,
    hour_ts      TIMESTAMPTZ NOT NULL,
    g_per_kwh    DOUBLE NOT NULL,
    basis        VARCHAR NOT NULL,     -- lifecycle | direct | marginal
    source       VARCHAR NOT NULL,
    is_estimated BOOLEAN NOT NULL,
    covered_s    INTEGER NOT NULL,     -- seconds of the hour the source covered
    origin       VARCHAR NOT NULL,
    imported_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (zone, hour_ts)
);

-- Annual defaults (shipped table), copied in at each build so results trace to the values used.
CREATE TABLE intensity_annual (
    zone      VARCHAR PRIMARY KEY,
    kind      VARCHAR NOT NULL,
    name      VARCHAR NOT NULL,
    g_per_kwh DOUBLE NOT NULL,
    year      INTEGER NOT NULL,
    basis     VARCHAR NOT NULL,
    source    VARCHAR NOT NULL,
    licence   VARCHAR NOT NULL
);

-- Cluster config in force at the last build.
CREATE TABLE clusters (
    cluster   VARCHAR PRIMARY KEY,
    provider  VARCHAR,
    region    VARCHAR,
    zone      VARCHAR,
    pue       DOUBLE NOT NULL,
    pue_known BOOLEAN NOT NULL
);
CREATE TABLE cluster_nodes (
    cluster  VARCHAR NOT NULL,
    pattern  VARCHAR NOT NULL,         -- glob on host names
    ord      INTEGER NOT NULL
);

-- Energy per interval between two samples of one stream (a GPU, a job on a GPU, or idle).
CREATE TABLE energy_intervals (
    stream_id BIGINT NOT NULL,
    start_ts  TIMESTAMPTZ NOT NULL,
    end_ts    TIMESTAMPTZ NOT NULL,
    energy_j  DOUBLE NOT NULL,
    quality   VARCHAR NOT NULL,        -- counter | counter_reset | first_sample | gap | power_integrated
    label_job VARCHAR                  -- dcgm hpc_job / pod label at the interval's end sample
);
CREATE TABLE streams (
    stream_id BIGINT PRIMARY KEY,
    source    VARCHAR NOT NULL,
    kind      VARCHAR NOT NULL,        -- job | idle | gpu (energy counter) | gpu_power (gauge)
    cluster   VARCHAR NOT NULL,
    hostname  VARCHAR NOT NULL,
    gpu       VARCHAR NOT NULL,
    uuid      VARCHAR NOT NULL,
    job_id    VARCHAR                  -- job streams only
);
-- Gaps longer than the bound: counter energy across them is kept (flagged 'gap'), power is not invented.
CREATE TABLE energy_gaps (
    stream_id BIGINT NOT NULL,
    start_ts  TIMESTAMPTZ NOT NULL,
    end_ts    TIMESTAMPTZ NOT NULL,
    energy_j  DOUBLE                   -- NULL where unknown (power gauges)
);

-- The result the reports read: energy and emissions per (job, GPU, hour).
CREATE TABLE fct_job_gpu_hour (
    hour_ts             TIMESTAMPTZ NOT NULL,
    cluster             VARCHAR NOT NULL,
    hostname            VARCHAR NOT NULL,
    gpu                 VARCHAR NOT NULL,
    uuid                VARCHAR NOT NULL,
    job_id              VARCHAR,       -- NULL for idle / unallocated energy
    project             VARCHAR,
    phase               VARCHAR,
    user_name           VARCHAR,
    region              VARCHAR,
    zone                VARCHAR,
    attribution         VARCHAR NOT NULL, -- exporter | gpu_label | node_share | idle | unallocated
    energy_quality      VARCHAR NOT NULL, -- counter | counter_reset | first_sample | gap | power_integrated
    intensity_quality   VARCHAR NOT NULL, -- hourly | nearest_hour | monthly_mean | annual_default | world_default
    in_ledger           BOOLEAN NOT NULL,
    energy_j            DOUBLE NOT NULL,
    pue                 DOUBLE NOT NULL,
    intensity_g_per_kwh DOUBLE NOT NULL,
    emissions_g         DOUBLE NOT NULL   -- energy_j / 3.6e6 * pue * intensity_g_per_kwh
);

CREATE TABLE build_info (
    built_at     TIMESTAMPTZ NOT NULL,
    config_path  VARCHAR,
    intervals    BIGINT NOT NULL,
    fct_rows     BIGINT NOT NULL,
    world_g_per_kwh DOUBLE NOT NULL
);
