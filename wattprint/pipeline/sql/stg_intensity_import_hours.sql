-- The zone-hours an import touches, recomputed from every point they hold after it (intensity_import_plan:
-- new, piece, kept): g_per_kwh is the time-weighted mean of the points over the parts of the hour they cover,
-- covered_s the length of those parts (the points of a zone are disjoint, so their overlaps add up to the union).
-- bases > 1: points of different bases of one signal (lifecycle and direct) would be averaged together; the store
-- refuses the import then.
CREATE OR REPLACE TEMP TABLE intensity_import_hours AS
WITH hours AS (
    SELECT DISTINCT zone,
           unnest(hours_of(epoch_us(start_ts), epoch_us(end_ts))) AS hour_idx   -- the hour split: macros.sql
    FROM intensity_import_plan WHERE action = 'new'
),
pts AS (
    SELECT *, epoch_us(start_ts) AS s_us, epoch_us(end_ts) AS e_us
    FROM intensity_import_plan WHERE action IN ('new', 'piece', 'kept')
),
o AS (
    SELECT h.hour_idx, p.*,
           hour_overlap_us(p.s_us, p.e_us, h.hour_idx) AS overlap_us
    FROM hours h JOIN pts p
      ON p.zone = h.zone AND p.s_us < (h.hour_idx + 1) * 3600000000 AND p.e_us > h.hour_idx * 3600000000
)
SELECT zone,
       to_timestamp(hour_idx * 3600) AS hour_ts,
       sum(g_per_kwh * overlap_us) / sum(overlap_us) AS g_per_kwh,
       min(basis) AS basis,
       string_agg(DISTINCT source, '+' ORDER BY source) AS source,
       bool_or(is_estimated) AS is_estimated,
       CAST(round(sum(overlap_us) / 1e6) AS INTEGER) AS covered_s,
       arg_min(origin, s_us) AS origin,
       count(DISTINCT basis) AS bases,
       max(basis) AS other_basis,
       arg_min(origin, basis) AS basis_origin,
       arg_max(origin, basis) AS other_basis_origin,
       arg_min(action = 'new', basis) AS basis_new,
       arg_max(action = 'new', basis) AS other_basis_new
FROM o
GROUP BY zone, hour_idx
