-- The CPU models of each phase of the scope: distinct sockets with RAPL energy and hosts, most sockets first.
SELECT phase, cpu_model, count(DISTINCT (cluster, hostname, socket)) AS sockets,
       count(DISTINCT (cluster, hostname)) AS hosts
FROM rpt_rows
WHERE kind = 'cpu'
GROUP BY 1, 2
ORDER BY 1, 3 DESC, 2
