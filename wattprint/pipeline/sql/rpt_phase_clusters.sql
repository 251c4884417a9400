-- Where each phase of the scope ran: per (cluster, region, zone), its GPU and host energy and their emissions
-- before PUE (for the energy-weighted intensity), the highest PUE, and whether the config gave it; most energy first.
SELECT r.phase, r.cluster, coalesce(c.provider, 'onprem') AS provider, coalesce(r.region, '') AS region, r.zone,
       max(r.pue) AS pue, coalesce(bool_and(c.pue_known), false) AS pue_known, sum(r.energy_j) AS energy_j,
       sum(r.gpu_g) AS gpu_g, sum(r.cpu_j) AS cpu_j, sum(r.cpu_g) AS cpu_g
FROM rpt_rows r
LEFT JOIN clusters c USING (cluster)
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, sum(r.energy_j) + sum(r.cpu_j) DESC, 2
