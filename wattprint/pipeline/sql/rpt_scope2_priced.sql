-- Both Scope 2 methods for the report's scope, per (project, phase, cluster, hour): the electricity of the headline's
-- layers (rpt_scope2_energy.sql), its location-based grams (each hour's grid intensity), what the contractual
-- instruments cover (rpt_scope2_cover: the cluster-period's fraction, the same for every project, so covered MWh is
-- shared pro rata to consumption) at their factors, and the rest at the zone's residual mix of the hour's year (the
-- latest year not after it), or, where none is known, at the location-based factor (counted: fallback_j).
-- Every sum here is over the rows in one order on the report's single thread, so it is the same run after run.
-- Parameters: $c, $k, $p, $n (the headline's layers, 1 or 0), $monthly (boolean).
CREATE OR REPLACE TEMP TABLE rpt_scope2_priced AS
WITH
r AS (
    SELECT coalesce(project, '') AS project, phase, cluster, zone, hour_ts,
           CASE WHEN $monthly THEN date_trunc('month', hour_ts) ELSE hour_ts END AS period_ts,
           sum(scope2_j(rpt_rows, $c, $k, $p, $n)) AS energy_j,
           sum(scope2_g(rpt_rows, $c, $k, $p, $n)) AS location_g
    FROM rpt_rows
    GROUP BY ALL
),
cov AS (
    SELECT r.project, r.phase, r.cluster, r.hour_ts,
           sum(r.energy_j * c.fraction) AS covered_j,
           sum(emissions_g(r.energy_j * c.fraction, c.g_per_kwh, 1.0)) AS instrument_g
    FROM r JOIN rpt_scope2_cover c USING (cluster, period_ts)
    GROUP BY ALL
),
u AS (
    SELECT r.*, coalesce(cov.covered_j, 0) AS covered_j, coalesce(cov.instrument_g, 0) AS instrument_g,
           -- what instruments leave, 0 when that is only the rounding of energy x fraction (1e-9 of it)
           CASE WHEN r.energy_j - coalesce(cov.covered_j, 0) > 1e-9 * r.energy_j
                THEN r.energy_j - coalesce(cov.covered_j, 0) ELSE 0 END AS uncovered_j
    FROM r LEFT JOIN cov USING (project, phase, cluster, hour_ts)
)
SELECT u.*, m.year AS residual_year, m.g_per_kwh AS residual_g_per_kwh,
       u.instrument_g + CASE
           WHEN m.g_per_kwh IS NOT NULL THEN emissions_g(u.uncovered_j, m.g_per_kwh, 1.0)
           WHEN u.energy_j > 0 THEN u.location_g * u.uncovered_j / u.energy_j
           ELSE 0 END AS market_g,
       CASE WHEN m.g_per_kwh IS NOT NULL THEN u.uncovered_j ELSE 0 END AS residual_j,
       CASE WHEN m.g_per_kwh IS NULL THEN u.uncovered_j ELSE 0 END AS fallback_j
FROM u ASOF LEFT JOIN rpt_scope2_residual m ON m.zone = u.zone AND year(u.hour_ts) >= m.year
ORDER BY ALL
