-- The residual mixes that priced some of the report's uncovered consumption (rpt_scope2_priced.sql), and the zones
-- and years none was known for (year NULL: priced at the location-based factor).
SELECT coalesce(zone, '') AS zone, year(hour_ts) AS consumption_year, residual_year,
       sum(residual_j) AS residual_j, sum(fallback_j) AS fallback_j
FROM rpt_scope2_priced
WHERE uncovered_j > 0
GROUP BY ALL
ORDER BY ALL
