-- Every column of layers.Sums summed over the scope's rows (rpt_layer_sums.sql), grouped.
-- Here: per project ('' for jobs not in the ledger) and phase, in order (the all-projects report's projects).
SELECT
    coalesce(project, '') AS project,
    phase,
    unnest(layer_sums(rpt_rows))
FROM rpt_rows
GROUP BY 1, 2
ORDER BY 1, 2
