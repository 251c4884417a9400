-- Distinct CPU sockets (with RAPL energy) and hosts per CPU model over the whole scope, most sockets first.
SELECT cpu_model, count(DISTINCT (cluster, hostname, socket)) AS sockets, count(DISTINCT (cluster, hostname)) AS hosts
FROM rpt_rows
WHERE kind = 'cpu'
GROUP BY 1
ORDER BY 2 DESC, 1
