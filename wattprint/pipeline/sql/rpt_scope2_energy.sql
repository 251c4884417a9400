-- The electricity both Scope 2 methods price, one rule: a row of rpt_rows (rpt_scope.sql) in the headline's layers.
-- c, k, p are 1 or 0: the cpu layer, the idle share (pro-rata policy) and the PUE overhead in the headline or not
-- (report/layers.py `included`). Scope 2 is the facility's electricity, so the PUE overhead is in it when the pue
-- layer is in the headline. scope2_j: joules; scope2_g: the same energy priced location-based (each hour's grid
-- intensity), i.e. the headline's operational grams of the row (layers.Sums.operational_g, summed).
CREATE OR REPLACE TEMP MACRO scope2_j(r, c, k, p) AS
    r.energy_j + c * r.cpu_j + k * (r.idle_j + c * r.cpu_idle_j)
    + p * (r.pue_gpu_j + c * r.pue_cpu_j + k * (r.pue_idle_j + c * r.pue_cpu_idle_j));
CREATE OR REPLACE TEMP MACRO scope2_g(r, c, k, p) AS
    r.gpu_g + c * r.cpu_g + k * (r.idle_g + c * r.cpu_idle_g)
    + p * (r.pue_gpu_g + c * r.pue_cpu_g + k * (r.pue_idle_g + c * r.pue_cpu_idle_g));
