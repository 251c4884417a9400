-- wattprint schema v2: what the reports need beyond v1. Forward-only, like 0001.
--  series.model / streams.model:   the GPU model label (exporter `model`, dcgm `modelName`), for hardware lines
--                                   and per-model embodied emissions
--  fct_job_gpu_hour.gpu_model:      that model on each result row
--  fct_job_gpu_hour.gpu_seconds:    time the row covers on its GPU (times the job's share under node_share):
--                                   GPU-hours, idle pro-rata and embodied amortisation are computed from it
-- Result rows built before v2 have NULL gpu_seconds; reports ask for `wattprint build` then.
ALTER TABLE series ADD COLUMN model VARCHAR;
UPDATE series SET model = coalesce(nullif(json_extract_string(labels, '$.model'), ''),
                                   nullif(json_extract_string(labels, '$.modelName'), ''));
ALTER TABLE streams ADD COLUMN model VARCHAR;
ALTER TABLE fct_job_gpu_hour ADD COLUMN gpu_model VARCHAR;
ALTER TABLE fct_job_gpu_hour ADD COLUMN gpu_seconds DOUBLE;
