-- The scope's host (RAPL) energy by how it was measured (energy_quality).
SELECT energy_quality AS quality, sum(cpu_j) AS cpu_j
FROM rpt_rows
WHERE kind = 'cpu'
GROUP BY 1
