-- Both Scope 2 methods per job of the report's scope (the market-based headline's top jobs, report/basis.py): each of
-- the job's rows in a (project, phase, cluster, hour) of rpt_scope2_priced.sql priced by that cell's rule
-- (scope2_market_part_g), so a job's share of the cell is its share of the cell's electricity.
-- Parameters: $c, $k, $p, $n (the headline's layers, 1 or 0), as rpt_scope2_priced.sql.
WITH
cell AS (
    SELECT project, phase, cluster, zone, hour_ts,
           CASE WHEN energy_j > 0 THEN instrument_g / energy_j ELSE 0 END AS instrument_g_per_j,
           CASE WHEN energy_j > 0 THEN uncovered_j / energy_j ELSE 0 END AS uncovered_share,
           residual_g_per_kwh
    FROM rpt_scope2_priced
)
SELECT r.cluster, r.job_id, coalesce(r.project, '') AS project, r.phase,
       sum(scope2_g(r, $c, $k, $p, $n)) AS location_g,
       sum(scope2_market_part_g(scope2_j(r, $c, $k, $p, $n), scope2_g(r, $c, $k, $p, $n), x.instrument_g_per_j,
                                x.uncovered_share, x.residual_g_per_kwh)) AS market_g
FROM rpt_rows r
JOIN cell x ON x.project = coalesce(r.project, '') AND x.phase = r.phase AND x.cluster = r.cluster
           AND x.zone IS NOT DISTINCT FROM r.zone AND x.hour_ts = r.hour_ts
GROUP BY ALL
ORDER BY ALL
