-- Every column of layers.Sums summed over the scope's rows (rpt_layer_sums.sql), grouped.
-- Here: per project ('' for jobs not in the ledger, which carry no units), phase and unit name, over the rows of
-- the jobs whose ledger row carries functional units (jobs.units, unit_name: the SCI's R), with those units and
-- jobs (the SCI section, report/sci.py: a project report has one project, the all-projects report one per project).
-- Each job's units count once, in proportion to the part of its run inside the window (units x overlap / duration: a
-- job crossing the window's edge is counted for the hours the window holds, as its energy is); a job still running
-- (no end) has no final count and is left out, as a job without units. Parameters: $start, $end (the report's
-- window).
WITH
unit_jobs AS (
    SELECT cluster, job_id, unit_name,
           CASE WHEN end_ts <= start_ts THEN units
                ELSE units * greatest(epoch(least(end_ts, $end::TIMESTAMPTZ))
                                      - epoch(greatest(start_ts, $start::TIMESTAMPTZ)), 0)
                     / (epoch(end_ts) - epoch(start_ts)) END AS units
    FROM jobs
    WHERE units IS NOT NULL AND unit_name IS NOT NULL AND end_ts IS NOT NULL
),
job_units AS (
    SELECT j.project, j.phase, u.unit_name, sum(u.units) AS units, count(*) AS jobs
    FROM (SELECT DISTINCT coalesce(project, '') AS project, phase, cluster, job_id FROM rpt_rows) j
    JOIN unit_jobs u USING (cluster, job_id)
    GROUP BY 1, 2, 3
),
sums AS (
    SELECT coalesce(rpt_rows.project, '') AS project, rpt_rows.phase, u.unit_name, unnest(layer_sums(rpt_rows))
    FROM rpt_rows JOIN unit_jobs u USING (cluster, job_id)
    GROUP BY 1, 2, 3
)
SELECT * FROM sums JOIN job_units USING (project, phase, unit_name)
ORDER BY project, phase, unit_name
