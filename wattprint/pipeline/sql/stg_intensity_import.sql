-- An import's points (import_points: zones canonical, disjoint within a zone, checked by check_points, one signal)
-- against the stored points of its zones (the signal's points table, $points: intensity_points for the average
-- signal, marginal_points for the marginal one; $hourly their hours): the plan of what to insert, delete and keep.
-- The store runs it once per signal, so the two signals never clip or replace one another
-- (migrations/0010_intensity_signals.sql).
-- The import replaces only the stored parts it overlaps: a stored point it overlaps is removed and what is left
-- of it outside the new points (before, between, after them) is kept as pieces with the stored value and
-- lineage. `kept` are the stored points in the zone-hours the import touches that it does not overlap: with the
-- new points and the pieces they are every point of those hours after the import (stg_intensity_import_hours).
-- Hours stored without points (written outside the import path) are adopted as [hour, hour + covered_s).
--   action: new | removed (delete if stored) | piece (insert) | kept (insert if not stored)
--   from_ts: the start of the stored point a piece is left of (start_ts otherwise)
CREATE OR REPLACE TEMP TABLE intensity_import_plan AS
WITH new AS (
    SELECT zone, start_ts, end_ts, g_per_kwh, basis, source, is_estimated, origin FROM import_points
),
hours AS (
    SELECT DISTINCT zone, to_timestamp(hour_idx * 3600) AS hour_ts
    FROM (SELECT zone, unnest(hours_of(epoch_us(start_ts), epoch_us(end_ts))) AS hour_idx
          FROM new)
),
orphan AS (
    SELECT h.zone, h.hour_ts AS start_ts, h.hour_ts + to_seconds(CAST(least(h.covered_s, 3600) AS BIGINT)) AS end_ts,
           h.g_per_kwh, h.basis, h.source, h.is_estimated, h.origin, h.imported_at, false AS stored
    FROM query_table($hourly) h JOIN hours a ON a.zone = h.zone AND a.hour_ts = h.hour_ts
    WHERE h.covered_s > 0
      AND NOT EXISTS (SELECT 1 FROM query_table($points) p
                      WHERE p.zone = h.zone AND p.start_ts < h.hour_ts + INTERVAL 1 HOUR AND p.end_ts > h.hour_ts)
),
old AS (
    SELECT p.zone, p.start_ts, p.end_ts, p.g_per_kwh, p.basis, p.source, p.is_estimated, p.origin, p.imported_at,
           true AS stored
    FROM query_table($points) p
    WHERE p.zone IN (SELECT zone FROM new)
      AND EXISTS (SELECT 1 FROM hours a
                  WHERE a.zone = p.zone AND a.hour_ts < p.end_ts AND a.hour_ts + INTERVAL 1 HOUR > p.start_ts)
    UNION ALL
    SELECT * FROM orphan
),
hit AS (
    SELECT o.*, n.start_ts AS n_start, n.end_ts AS n_end
    FROM old o JOIN new n ON n.zone = o.zone AND n.start_ts < o.end_ts AND n.end_ts > o.start_ts
),
pieces AS (
    SELECT zone, start_ts AS from_ts, coalesce(lag(n_end) OVER w, start_ts) AS piece_start, n_start AS piece_end,
           g_per_kwh, basis, source, is_estimated, origin, imported_at, stored
    FROM hit WINDOW w AS (PARTITION BY zone, start_ts ORDER BY n_start)
    UNION ALL
    SELECT zone, start_ts, max(n_end), end_ts, g_per_kwh, basis, source, is_estimated, origin, imported_at, stored
    FROM hit GROUP BY zone, start_ts, end_ts, g_per_kwh, basis, source, is_estimated, origin, imported_at, stored
)
SELECT 'new' AS action, zone, start_ts, end_ts, g_per_kwh, basis, source, is_estimated, origin,
       CAST(NULL AS TIMESTAMPTZ) AS imported_at, false AS stored, start_ts AS from_ts
FROM new
UNION ALL
SELECT 'removed', zone, start_ts, end_ts, g_per_kwh, basis, source, is_estimated, origin, imported_at, stored, start_ts
FROM old WHERE (zone, start_ts) IN (SELECT (zone, start_ts) FROM hit)
UNION ALL
SELECT 'piece', zone, piece_start, piece_end, g_per_kwh, basis, source, is_estimated, origin, imported_at, stored, from_ts
FROM pieces WHERE piece_start < piece_end
UNION ALL
SELECT 'kept', zone, start_ts, end_ts, g_per_kwh, basis, source, is_estimated, origin, imported_at, stored, start_ts
FROM old WHERE (zone, start_ts) NOT IN (SELECT (zone, start_ts) FROM hit)
