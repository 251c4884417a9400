-- The embodied rate (kgCO2eq per GPU-hour) of each (cluster, GPU model), filled by report/scope.py from the config
-- and the hardware table, and joined to the GPU rows by rpt_scope.sql.
CREATE OR REPLACE TEMP TABLE rpt_rates (cluster VARCHAR, gpu_model VARCHAR, kg_per_gpu_hour DOUBLE)
