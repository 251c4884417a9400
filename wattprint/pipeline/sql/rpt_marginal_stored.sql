-- The marginal signal stored for the zones of the report's scope (rpt_rows) inside its window [$start, $end): per
-- zone, the hours holding marginal data and their sources. No row at all: the report leaves its marginal section out.
SELECT zone, count(*) AS hours, string_agg(DISTINCT source, '+' ORDER BY source) AS sources
FROM marginal_hourly
WHERE hour_ts >= $start AND hour_ts < $end
  AND zone IN (SELECT DISTINCT zone FROM rpt_rows WHERE zone IS NOT NULL)
GROUP BY zone
ORDER BY zone
