-- What each contractual instrument covered of the report's scope, per project ('' not in the ledger) and phase:
-- joules and grams at its factor (rpt_scope2_priced.sql's rows, rpt_scope2_cover's fractions).
SELECT p.project, p.phase, c.instrument, c.ord,
       sum(p.energy_j * c.fraction) AS energy_j,
       sum(emissions_g(p.energy_j * c.fraction, c.g_per_kwh, 1.0)) AS g
FROM rpt_scope2_priced p JOIN rpt_scope2_cover c USING (cluster, period_ts)
GROUP BY ALL
ORDER BY c.ord, p.project, p.phase
