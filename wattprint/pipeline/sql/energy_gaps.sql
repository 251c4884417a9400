-- Every gap longer than the bound, per stream, with what it means for the energy (cause):
--  counter          a counter kept counting across it: its energy is kept (flagged 'gap')
--  counter_restart  the counter restarted during it ('gap_reset'): the energy before the restart is unknown, lost
--  power            a power gauge: nothing is invented (energy NULL)
-- Gaps of a power gauge while an energy counter measured the same GPU (gpu_coverage) are not gaps.
-- Reports count gaps per GPU, merging its streams' gaps (reports.md).
WITH pts AS (
    SELECT DISTINCT ss.stream_id, sm.ts
    FROM samples sm
    JOIN stg_series_stream ss USING (series_id)
    WHERE ss.kind = 'gpu_power' AND NOT unread(ss.source, sm.value)
),
seq AS (
    SELECT stream_id, lag(ts) OVER (PARTITION BY stream_id ORDER BY ts) AS prev_ts, ts FROM pts
)
SELECT stream_id, start_ts, end_ts, energy_j,
       CASE quality WHEN 'gap' THEN 'counter' ELSE 'counter_restart' END AS cause
FROM energy_intervals WHERE quality IN ('gap', 'gap_reset')
UNION ALL
SELECT q.stream_id, q.prev_ts, q.ts, NULL, 'power'
FROM seq q
JOIN streams st USING (stream_id)
WHERE epoch(q.ts) - epoch(q.prev_ts) > $max_gap_s
  AND NOT EXISTS (SELECT 1 FROM gpu_coverage c
                  WHERE c.gpu_key = st.gpu_key AND c.below_rank = 3 AND c.cov_start <= q.prev_ts AND c.cov_end >= q.ts)
