-- The fleet's Scope 2 electricity (rpt_scope2_energy.sql) per cluster and matching period (UTC month, or hour for
-- hourly matching): what contractual instruments are matched to (report/scope2.py). Read while rpt_rows holds every
-- project's and phase's rows of the whole periods the report's window touches, so that covered MWh is shared among
-- projects pro rata to their consumption in the instrument's scope and period, whatever the report's own scope.
-- Parameters: $c, $k, $p, $n (the headline's layers, 1 or 0), $monthly (boolean).
SELECT
    cluster,
    CASE WHEN $monthly THEN date_trunc('month', hour_ts) ELSE hour_ts END AS period_ts,
    exact_sum(scope2_j(rpt_rows, $c, $k, $p, $n)) AS energy_j
FROM rpt_rows
GROUP BY ALL
ORDER BY ALL
