-- Every column of layers.Sums summed over the scope's rows (rpt_layer_sums.sql), grouped.
-- Here: per project ('' for jobs not in the ledger), run on the previous window's scope (the all-projects report's
-- comparison).
SELECT
    coalesce(project, '') AS project,
    unnest(layer_sums(rpt_rows))
FROM rpt_rows
GROUP BY 1
