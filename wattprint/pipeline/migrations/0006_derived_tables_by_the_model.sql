-- wattprint schema v6: migrations hold only what is stored; every derived table is made by the model runner
-- (wattprint/pipeline/model.py) from its query in wattprint/pipeline/sql/<table>.sql. Forward-only, like 0001.
-- The derived tables 0001-0005 created are dropped here; the verb that applies this migration rebuilds them, and
-- until a build has run, `wattprint report` asks for `wattprint build`.
DROP TABLE fct_gpu_hour;
DROP TABLE fct_job_gpu_hour;
DROP TABLE fct_job_cpu_hour;
DROP TABLE fct_job_cpu_time_hour;
DROP TABLE node_rapl_hour;
DROP TABLE gpu_held_hour;
DROP TABLE gpu_coverage;
DROP TABLE stream_spans;
DROP TABLE energy_gaps;
DROP TABLE energy_intervals;
DROP TABLE streams;
