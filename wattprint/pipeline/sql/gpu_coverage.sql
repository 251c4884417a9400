-- Which source measures each physical GPU (gpu_key, sql/macros.sql) when. One GPU is priced from one source per
-- interval, by preference: 1 the wattprint exporter (its job and idle counters split the GPU's hardware counter
-- exactly), 2 a dcgm-exporter energy counter (the whole GPU), 3 a power gauge (integrated: it can miss 5-30 % on a
-- bursty job). Rows: for a stream of rank below_rank (2: dcgm, 3: power), the spans in which a better source's
-- streams run, merged into islands; int_hourly_pieces.sql prices the other source only outside them and keeps
-- what it measured inside as 'unpriced', and stg_power_intervals.sql skips power intervals wholly inside.
-- The spans are the energy counters' (as stream_spans.sql has them): the power intervals are made after this.
WITH
counter_spans AS (
    SELECT stream_id, min(start_ts) AS start_ts, max(end_ts) AS end_ts
    FROM stg_counter_intervals
    WHERE energy_j > 0
    GROUP BY stream_id
),
spans AS (
    SELECT st.gpu_key, CASE WHEN st.source = 'wattprint' THEN 1 ELSE 2 END AS rank, sp.start_ts, sp.end_ts
    FROM counter_spans sp
    JOIN streams st USING (stream_id)
    WHERE st.gpu_key IS NOT NULL AND st.kind IN ('gpu', 'job', 'idle')
),
cand AS (
    SELECT l.below_rank, s.gpu_key, s.start_ts, s.end_ts
    FROM spans s JOIN (VALUES (2), (3)) l(below_rank) ON s.rank < l.below_rank
),
marked AS (
    SELECT *,
           CASE WHEN start_ts <= max(end_ts) OVER (PARTITION BY below_rank, gpu_key ORDER BY start_ts, end_ts
                                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                THEN 0 ELSE 1 END AS starts_island
    FROM cand
),
islands AS (
    SELECT *, sum(starts_island) OVER (PARTITION BY below_rank, gpu_key ORDER BY start_ts, end_ts) AS island
    FROM marked
)
SELECT gpu_key, below_rank::INTEGER AS below_rank, min(start_ts) AS cov_start, max(end_ts) AS cov_end
FROM islands
GROUP BY gpu_key, below_rank, island
