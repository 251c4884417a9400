-- Every column of layers.Sums summed over the scope's rows (rpt_layer_sums.sql), grouped.
-- Here: per phase (the phase blocks; measured phases only, manual phases have no rows).
SELECT
    phase,
    unnest(layer_sums(rpt_rows))
FROM rpt_rows
GROUP BY 1
