-- The electricity both Scope 2 methods price, one rule: a row of rpt_rows (rpt_scope.sql) in the headline's layers.
-- c, k, p, n are 1 or 0: the cpu layer, the idle share (pro-rata policy), the PUE overhead and the node layer in the
-- headline or not (report/layers.py `included`). Scope 2 is the facility's electricity, so the PUE overhead is in it when the pue
-- layer is in the headline. scope2_j: joules; scope2_g: the same energy priced location-based (each hour's grid
-- intensity), i.e. the headline's operational grams of the row (layers.Sums.operational_g, summed).
CREATE OR REPLACE TEMP MACRO scope2_j(r, c, k, p, n) AS
    r.energy_j + c * r.cpu_j + n * r.node_j + k * (r.idle_j + c * r.cpu_idle_j + n * r.node_idle_j)
    + p * (r.pue_gpu_j + c * r.pue_cpu_j + n * r.pue_node_j
           + k * (r.pue_idle_j + c * r.pue_cpu_idle_j + n * r.pue_node_idle_j));
CREATE OR REPLACE TEMP MACRO scope2_g(r, c, k, p, n) AS
    r.gpu_g + c * r.cpu_g + n * r.node_g + k * (r.idle_g + c * r.cpu_idle_g + n * r.node_idle_g)
    + p * (r.pue_gpu_g + c * r.pue_cpu_g + n * r.pue_node_g
           + k * (r.pue_idle_g + c * r.pue_cpu_idle_g + n * r.pue_node_idle_g));
-- scope2_market_part_g(j, g, instrument_g_per_j, uncovered_share, residual_g_per_kwh): the market-based grams of a
-- part of one (project, phase, cluster, hour) of rpt_scope2_priced.sql (a job's rows in it, or one row), priced as
-- that cell prices all its electricity: j joules (g grams location-based) at the cell's instrument grams per joule,
-- and the cell's uncovered share of them at the zone's residual mix, or at their location-based grams where no
-- residual mix is known. The cell's rule is linear in its electricity (the covered fractions are the cluster-period's,
-- the factors the zone-hour's), so its parts add up to the cell: a job's share is exact, not an approximation.
CREATE OR REPLACE TEMP MACRO scope2_market_part_g(j, g, instrument_g_per_j, uncovered_share, residual_g_per_kwh) AS
    j * instrument_g_per_j
    + CASE WHEN residual_g_per_kwh IS NOT NULL THEN emissions_g(j * uncovered_share, residual_g_per_kwh, 1.0)
           ELSE g * uncovered_share END;
