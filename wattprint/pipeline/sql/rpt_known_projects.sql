-- Every project a report can be asked for: the job ledger's, and those of stored results (sorted, for the hint
-- that lists them).
SELECT DISTINCT project FROM jobs
UNION
SELECT DISTINCT project FROM fct_job_gpu_hour WHERE project IS NOT NULL
ORDER BY 1
