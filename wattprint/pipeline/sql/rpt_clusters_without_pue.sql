-- The scope's clusters whose PUE the config does not give (1.0 was applied).
SELECT DISTINCT r.cluster
FROM rpt_rows r
LEFT JOIN clusters c USING (cluster)
WHERE NOT coalesce(c.pue_known, false)
ORDER BY 1
