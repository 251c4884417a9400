-- The marginal (consequential) view of the report's scope, per (project, phase, cluster, zone, hour): the electricity
-- the headline counts (rpt_scope2_energy.sql `scope2_j`: its layers, with the PUE overhead when pue is in the
-- headline; the same energy Scope 2 prices), and what of it the marginal signal of its zone covers, priced there.
-- Only the marginal signal (marginal_hourly) is read, only where it exists: no fallback to the average signal, to a
-- nearest hour or to any default, so an uncovered hour adds energy but no marginal grams. An hour's energy is taken
-- as spread evenly over the hour (the model's finest grain): a partly covered hour counts for its covered part
-- (covered_s / 3600 of its energy), priced at the time-weighted mean of the marginal points in it (the stored
-- hour's g_per_kwh). Never added to the headline or to any average figure (docs/methodology.md section 11).
-- Every sum here is over the rows in one order on the report's single thread, so it is the same run after run.
-- Parameters: $c, $k, $p, $n (the headline's layers cpu, idle, pue, node: 1 or 0).
CREATE OR REPLACE TEMP TABLE rpt_marginal_priced AS
WITH
r AS (
    SELECT coalesce(project, '') AS project, phase, cluster, zone, hour_ts,
           sum(scope2_j(rpt_rows, $c, $k, $p, $n)) AS energy_j
    FROM rpt_rows
    GROUP BY ALL
),
m AS (
    SELECT zone, hour_ts, g_per_kwh, least(covered_s, 3600) / 3600.0 AS covered, source
    FROM marginal_hourly
)
SELECT r.*,
       r.energy_j * coalesce(m.covered, 0) AS covered_j,
       coalesce(emissions_g(r.energy_j * m.covered, m.g_per_kwh, 1.0), 0) AS marginal_g,
       m.source
FROM r LEFT JOIN m ON m.zone = r.zone AND m.hour_ts = r.hour_ts
ORDER BY ALL
