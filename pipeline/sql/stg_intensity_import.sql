-- Imported intensity points -> hours, time-weighted (UK half-hours and WattTime 5-minute points
-- become one value per hour; covered_s says how much of the hour the source covered).
CREATE OR REPLACE TEMP TABLE intensity_import_hours AS
WITH p AS (
    SELECT *, epoch_us(start_ts) AS s_us, epoch_us(end_ts) AS e_us FROM import_points
),
h AS (
    SELECT p.*, unnest(range(s_us // 3600000000, (e_us - 1) // 3600000000 + 1)) AS hour_idx FROM p
),
o AS (
    SELECT *, least(e_us, (hour_idx + 1) * 3600000000) - greatest(s_us, hour_idx * 3600000000) AS overlap_us FROM h
)
SELECT zone,
       to_timestamp(hour_idx * 3600) AS hour_ts,
       sum(g_per_kwh * overlap_us) / sum(overlap_us) AS g_per_kwh,
       min(basis) AS basis,
       min(source) AS source,
       bool_or(is_estimated) AS is_estimated,
       CAST(round(sum(overlap_us) / 1e6) AS INTEGER) AS covered_s,
       min(origin) AS origin
FROM o
GROUP BY zone, hour_idx
