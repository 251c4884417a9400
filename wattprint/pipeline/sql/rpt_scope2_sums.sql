-- Both Scope 2 methods (rpt_scope2_priced.sql) per project ('' for jobs not in the ledger) and phase.
SELECT project, phase,
       sum(energy_j) AS energy_j, sum(location_g) AS location_g, sum(market_g) AS market_g,
       sum(covered_j) AS covered_j, sum(residual_j) AS residual_j, sum(fallback_j) AS fallback_j
FROM rpt_scope2_priced
GROUP BY ALL
ORDER BY ALL
