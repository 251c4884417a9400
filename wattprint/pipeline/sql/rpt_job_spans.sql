-- Each job of the scope, per phase: its first and last hour with rows, and its start and end in the ledger (NULL
-- for a job not in it), from which the phase's wall-clock hours are the union (report/phases.py).
SELECT r.phase, min(r.hour_ts) AS first_hour, max(r.hour_ts) AS last_hour, any_value(j.start_ts) AS start_ts,
       any_value(j.end_ts) AS end_ts
FROM rpt_rows r
LEFT JOIN jobs j USING (cluster, job_id)
GROUP BY r.phase, r.cluster, r.job_id
