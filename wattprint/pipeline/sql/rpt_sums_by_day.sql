-- Every column of layers.Sums summed over the scope's rows (rpt_layer_sums.sql), grouped.
-- Here: per UTC day (days since 1970-01-01), in order (the daily series).
SELECT
    epoch(hour_ts)::BIGINT // 86400 AS day,
    unnest(layer_sums(rpt_rows))
FROM rpt_rows
GROUP BY 1
ORDER BY 1
