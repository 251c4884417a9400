-- Jobs of the ledger in the scope ($project NULL: every project; $phases empty: every phase) that ran in the window
-- [$start, $end) but have no row in it: no measured energy at all.
SELECT count(*) AS jobs
FROM jobs j
WHERE ($project IS NULL OR j.project = $project)
  AND (len(CAST($phases AS VARCHAR[])) = 0 OR list_contains(CAST($phases AS VARCHAR[]), j.phase))
  AND j.start_ts < $end AND coalesce(j.end_ts, 'infinity'::TIMESTAMPTZ) > $start
  AND NOT EXISTS (SELECT 1 FROM rpt_rows r WHERE r.cluster = j.cluster AND r.job_id = j.job_id)
