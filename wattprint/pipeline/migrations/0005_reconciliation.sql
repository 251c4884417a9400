-- wattprint schema v5: numbers that survive a real cluster. Forward-only, like 0001.
--  streams.node / gpu_key / parent_id: the node key (sql/macros.sql: case, port and domain do not make another node),
--                                   the physical GPU (its UUID, whichever exporter reports it), and for the exporter's
--                                   split streams the total counter they split (for a held-time counter, its job's
--                                   energy stream)
--  energy_gaps.cause:               counter (energy kept) | counter_restart (energy before the restart lost) | power
--  fct_job_gpu_hour.gpu_key:        the physical GPU of each result row
--  stream_spans:                    first and last instant of each stream's intervals
--  gpu_coverage:                    when a better source measures a GPU (wattprint over dcgm over power gauges)
--  gpu_held_hour:                   seconds each job held each GPU per hour (wattprint_job_gpu_seconds_total)
--  fct_gpu_hour:                    per GPU and hour, the priced energy against the GPU's hardware energy counter
-- Derived tables only: `wattprint build` (or any verb) fills them from the stored inputs.
ALTER TABLE streams ADD COLUMN node VARCHAR;
ALTER TABLE streams ADD COLUMN gpu_key VARCHAR;
ALTER TABLE streams ADD COLUMN parent_id BIGINT;
ALTER TABLE energy_gaps ADD COLUMN cause VARCHAR;
ALTER TABLE fct_job_gpu_hour ADD COLUMN gpu_key VARCHAR;

CREATE TABLE stream_spans (
    stream_id BIGINT PRIMARY KEY,
    start_ts  TIMESTAMPTZ NOT NULL,
    end_ts    TIMESTAMPTZ NOT NULL
);

CREATE TABLE gpu_coverage (
    gpu_key    VARCHAR NOT NULL,
    below_rank INTEGER NOT NULL,           -- 2: covers dcgm streams (by wattprint); 3: covers power gauges (by either)
    cov_start  TIMESTAMPTZ NOT NULL,
    cov_end    TIMESTAMPTZ NOT NULL
);

CREATE TABLE gpu_held_hour (
    stream_id BIGINT NOT NULL,             -- the job's energy stream on that GPU
    hour_idx  BIGINT NOT NULL,             -- UTC hours since 1970
    quality   VARCHAR NOT NULL,
    held_s    DOUBLE NOT NULL
);

CREATE TABLE fct_gpu_hour (
    hour_ts    TIMESTAMPTZ NOT NULL,
    cluster    VARCHAR NOT NULL,
    hostname   VARCHAR NOT NULL,
    gpu        VARCHAR NOT NULL,
    uuid       VARCHAR NOT NULL,
    gpu_key    VARCHAR NOT NULL,
    sources    VARCHAR NOT NULL,           -- priced in the hour, best first: wattprint, dcgm, power
    counter_j  DOUBLE,                     -- the GPU's hardware energy counter; NULL: a power gauge is priced
    priced_j   DOUBLE NOT NULL,            -- fct_job_gpu_hour's energy for this GPU and hour
    residual_j DOUBLE NOT NULL,            -- of which: counted by the GPU, by no job or idle counter
    excess_j   DOUBLE NOT NULL,            -- job and idle counters beyond the GPU counter: not priced
    unpriced_j DOUBLE NOT NULL,            -- a less preferred source's energy for time a better one measured
    diff_j     DOUBLE,                     -- priced_j - counter_j
    cause      VARCHAR                     -- set when |diff_j| is beyond rounding
);
