-- The time-shift what-if: each phase's, and each of the $jobs jobs' (cluster, job_id), hourly energy profile
-- started 0 to $slack_h hours later in the same zones, priced with the model's intensity rule at the moved hours
-- (nearest stored hour within $bound_h hours, then the zone's fallbacks, then $world_g_per_kwh). Per entity and
-- shift: the grams, and whether every moved hour was priced from measured data (hourly or nearest_hour): the
-- report only picks a later start among those, so that a fallback's flat average never passes for a clean hour.
WITH
r AS (
    SELECT * FROM intensity_resolved('rpt_shift_needed', $bound_h, $world_g_per_kwh)
),
s AS (
    SELECT range AS shift_h FROM range(0, $slack_h + 1)
),
entities AS (
    SELECT 'phase' AS kind, phase AS name, '' AS cluster, zone, hour_idx, sum(energy_j) AS energy_j
    FROM rpt_shift_profile GROUP BY ALL
    UNION ALL
    SELECT 'job', p.job_id, p.cluster, p.zone, p.hour_idx, sum(p.energy_j)
    FROM rpt_shift_profile p
    JOIN (SELECT unnest(CAST($jobs AS STRUCT(cluster VARCHAR, job_id VARCHAR)[])) AS j) t
      ON t.j.cluster = p.cluster AND t.j.job_id = p.job_id
    GROUP BY ALL
)
SELECT e.kind, e.name, e.cluster, s.shift_h,
       sum(emissions_g(e.energy_j, r.g_per_kwh, 1.0)) AS grams,
       bool_and(r.quality IN ('hourly', 'nearest_hour')) AS measured,
       sum(e.energy_j) AS energy_j
FROM entities e
CROSS JOIN s
JOIN r ON r.zone = e.zone AND r.hour_idx = e.hour_idx + s.shift_h
GROUP BY ALL
ORDER BY e.kind, e.name, e.cluster, s.shift_h
