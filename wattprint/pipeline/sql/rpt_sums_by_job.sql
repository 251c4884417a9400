-- Every column of layers.Sums summed over the scope's rows (rpt_layer_sums.sql), grouped.
-- Here: per job (the all-projects report's top jobs; ranked in Python by the headline, which depends on the layers).
SELECT
    cluster,
    job_id,
    coalesce(project, '') AS project,
    phase,
    coalesce(any_value(user_name), '') AS user_name,
    unnest(layer_sums(rpt_rows))
FROM rpt_rows
GROUP BY 1, 2, 3, 4
