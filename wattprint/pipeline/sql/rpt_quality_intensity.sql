-- The scope's GPU and host energy by how its hour was priced (intensity_quality: hourly, nearest_hour, fallbacks).
SELECT intensity_quality AS quality, sum(energy_j + cpu_j) AS energy_j
FROM rpt_rows
WHERE kind IN ('gpu', 'cpu')
GROUP BY 1
