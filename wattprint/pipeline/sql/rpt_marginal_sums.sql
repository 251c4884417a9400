-- The marginal view (rpt_marginal_priced.sql) per project ('' for jobs not in the ledger), phase and cluster: the
-- electricity the headline counts, the part of it the marginal signal covers, its marginal grams, and the sources of
-- the marginal data that priced it ('+'-joined, as marginal_hourly.source).
SELECT project, phase, cluster, zone,
       sum(energy_j) AS energy_j, sum(covered_j) AS covered_j, sum(marginal_g) AS marginal_g,
       string_agg(DISTINCT source, '+' ORDER BY source) FILTER (WHERE covered_j > 0) AS sources
FROM rpt_marginal_priced
GROUP BY ALL
ORDER BY ALL
