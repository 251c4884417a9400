-- The intensity rule, written once: for every (zone, hour_idx) row of the table named `needed`, the intensity and
-- how it was found: that hour, else the nearest hour within bound_h hours, else the zone's monthly mean, else the
-- shipped annual value for the zone, else the world average (world_g_per_kwh). Each fallback is named (quality) so
-- reports can count it. `hourly` needs the hour's data to cover all of it (covered_s = 3600); a partly covered hour
-- is the nearest data there is (distance 0, so its own mean is used) and is labelled `nearest_hour`.
-- Zones are compared as stored: every writer spells them canonically (pipeline/zones.py).
-- Average intensity only: intensity_hourly is the average signal; a marginal rate (WattTime co2_moer) is stored apart
-- (marginal_hourly, migrations/0010_intensity_signals.sql) and never prices the headline, the what-if or the
-- time-shift what-if, nor stands in for a missing average hour.
-- Used by int_intensity_resolved.sql (the hours that have energy) and the report's what-if (other zones, same hours).
CREATE OR REPLACE TEMP MACRO intensity_resolved(needed, bound_h, world_g_per_kwh) AS TABLE
WITH
asked AS (
    SELECT DISTINCT zone, hour_idx, to_timestamp(hour_idx * 3600) AS hour_ts FROM query_table(needed)
),
exact AS (
    SELECT n.zone, n.hour_idx, i.g_per_kwh
    FROM asked n JOIN intensity_hourly i ON i.zone = n.zone AND i.hour_ts = n.hour_ts AND i.covered_s >= 3600
),
nearest AS (
    SELECT n.zone, n.hour_idx,
           arg_min(i.g_per_kwh, abs(epoch(i.hour_ts) - epoch(n.hour_ts)) * 2
                                + CASE WHEN i.hour_ts < n.hour_ts THEN 0 ELSE 1 END) AS g_per_kwh
    FROM asked n
    JOIN intensity_hourly i ON i.zone = n.zone
     AND i.hour_ts BETWEEN n.hour_ts - to_seconds(CAST(bound_h * 3600 AS BIGINT)) AND n.hour_ts + to_seconds(CAST(bound_h * 3600 AS BIGINT))
    GROUP BY ALL
),
monthly AS (
    -- the mean of decimals (macros.sql `exact`, written out: the report's what-if loads this file alone)
    SELECT zone, date_trunc('month', hour_ts) AS month, CAST(avg(CAST(g_per_kwh AS DECIMAL(38, 9))) AS DOUBLE) AS g_per_kwh
    FROM intensity_hourly GROUP BY ALL
)
SELECT n.zone, n.hour_idx,
       coalesce(e.g_per_kwh, ne.g_per_kwh, mo.g_per_kwh, a.g_per_kwh, world_g_per_kwh) AS g_per_kwh,
       CASE WHEN e.g_per_kwh IS NOT NULL THEN 'hourly'
            WHEN ne.g_per_kwh IS NOT NULL THEN 'nearest_hour'
            WHEN mo.g_per_kwh IS NOT NULL THEN 'monthly_mean'
            WHEN a.g_per_kwh IS NOT NULL THEN 'annual_default'
            ELSE 'world_default' END AS quality
FROM asked n
LEFT JOIN exact e USING (zone, hour_idx)
LEFT JOIN nearest ne USING (zone, hour_idx)
LEFT JOIN monthly mo ON mo.zone = n.zone AND mo.month = date_trunc('month', n.hour_ts)
LEFT JOIN intensity_annual a ON a.zone = n.zone AND n.zone <> ''
