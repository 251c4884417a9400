-- The GPU and host energy of the scope's jobs that are in the ledger (the projects' part of the reconciliation).
SELECT coalesce(sum(energy_j), 0) AS energy_j, coalesce(sum(cpu_j), 0) AS cpu_j
FROM rpt_rows
WHERE in_ledger
