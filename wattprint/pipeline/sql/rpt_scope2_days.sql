-- Both Scope 2 methods per UTC day (days since 1970-01-01, as rpt_sums_by_day.sql) of the report's scope, from
-- rpt_scope2_priced.sql: the market-based headline's daily series (report/basis.py).
SELECT epoch(hour_ts)::BIGINT // 86400 AS day, sum(location_g) AS location_g, sum(market_g) AS market_g
FROM rpt_scope2_priced
GROUP BY 1
ORDER BY 1
