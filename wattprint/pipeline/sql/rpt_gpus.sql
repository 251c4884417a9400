-- Distinct GPUs per model over the whole scope (a GPU two phases used counts once), most first.
SELECT gpu_model, count(DISTINCT (cluster, hostname, gpu, uuid)) AS gpus
FROM rpt_rows
WHERE kind = 'gpu'
GROUP BY 1
ORDER BY 2 DESC, 1
