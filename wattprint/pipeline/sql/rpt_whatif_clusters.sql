-- The clusters with a grid zone: where the what-if prices the scope's hours.
SELECT cluster, provider, coalesce(region, '') AS region, zone, pue
FROM clusters
WHERE zone IS NOT NULL
ORDER BY 1
