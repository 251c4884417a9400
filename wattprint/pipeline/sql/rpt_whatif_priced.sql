-- The scope's hourly energy priced in each zone with the model's intensity rule at the same hours (nearest stored
-- hour within $bound_h hours, then the zone's fallbacks, then $world_g_per_kwh): grams, the energy priced, and the
-- part of it priced with hourly intensity.
SELECT r.zone, sum(emissions_g(p.energy_j, r.g_per_kwh, 1.0)) AS grams, sum(p.energy_j) AS energy_j,
       coalesce(sum(p.energy_j) FILTER (WHERE r.quality = 'hourly'), 0) AS hourly_j
FROM rpt_profile p
JOIN intensity_resolved('rpt_intensity_needed', $bound_h, $world_g_per_kwh) r USING (hour_idx)
GROUP BY 1
