-- The scope's GPU energy by how it was measured (energy_quality: counter, gap, power_integrated, ...).
SELECT energy_quality AS quality, sum(energy_j) AS energy_j
FROM rpt_rows
WHERE kind = 'gpu'
GROUP BY 1
