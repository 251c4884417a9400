-- Every gap longer than the bound: counter gaps keep their measured energy, power gaps have none.
INSERT INTO energy_gaps (stream_id, start_ts, end_ts, energy_j)
WITH pts AS (
    SELECT DISTINCT ss.stream_id, sm.ts
    FROM samples sm
    JOIN series_stream ss USING (series_id)
    WHERE ss.kind = 'gpu_power' AND ss.stream_id IN (SELECT stream_id FROM streams)
),
seq AS (
    SELECT stream_id, lag(ts) OVER (PARTITION BY stream_id ORDER BY ts) AS prev_ts, ts FROM pts
)
SELECT stream_id, start_ts, end_ts, energy_j FROM energy_intervals WHERE quality = 'gap'
UNION ALL
SELECT stream_id, prev_ts, ts, NULL FROM seq WHERE epoch(ts) - epoch(prev_ts) > $max_gap_s
