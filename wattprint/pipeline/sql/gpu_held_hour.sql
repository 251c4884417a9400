-- The seconds each job held each GPU, per UTC hour: the exporter's wattprint_job_gpu_seconds_total counters with
-- the counter rules (macros_counter_deltas.sql), cut at hours pro rata by time, booked on the job's energy stream (its
-- parent). A job's GPU-seconds come from here when its counter was ingested; without it (older exporters) they
-- are the time its energy counter rose (int_hourly_pieces.sql), never the retention tail after it left the GPU.
WITH d AS (
    SELECT st.parent_id AS stream_id, c.quality, c.amount, epoch_us(c.start_ts) AS s_us, epoch_us(c.end_ts) AS e_us
    FROM counter_deltas(['gpu_seconds'], $max_gap_s) c
    JOIN streams st USING (stream_id)
    WHERE st.parent_id IS NOT NULL
)
SELECT stream_id, h AS hour_idx, quality, exact_sum(amount * hour_share(s_us, e_us, h)) AS held_s
FROM (SELECT *, unnest(hours_of(s_us, e_us)) AS h FROM d)
GROUP BY ALL
