-- The GPU models of each phase of the scope: distinct GPUs and GPU-seconds, most GPUs first.
SELECT phase, gpu_model, count(DISTINCT (cluster, hostname, gpu, uuid)) AS gpus, sum(gpu_seconds) AS gpu_seconds
FROM rpt_rows
WHERE kind = 'gpu'
GROUP BY 1, 2
ORDER BY 1, 3 DESC, 2
