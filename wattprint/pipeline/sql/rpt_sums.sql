-- Every column of layers.Sums summed over the scope's rows (rpt_layer_sums.sql), grouped.
-- Here: the whole scope, one row (the what-if's measured hours).
SELECT
    unnest(layer_sums(rpt_rows))
FROM rpt_rows
