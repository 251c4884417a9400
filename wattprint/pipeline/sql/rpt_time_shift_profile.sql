-- The time-shift what-if's input: the scope's energy per (phase, job, zone, hour), as the report's headline counts
-- it: the jobs' GPU energy, their host energy when the cpu layer is selected ($c: 1 or 0), their node residual when
-- the node layer is ($n), the idle share under the pro-rata policy ($k: 1 or 0; its host and node parts again with
-- $c and $n), times the cluster's PUE when the pue layer is selected ($pue). Hour index: hours since 1970. Rows without a zone cannot be priced anywhere and are left out.
CREATE OR REPLACE TEMP TABLE rpt_shift_profile AS
SELECT phase, cluster, job_id, zone, epoch(hour_ts)::BIGINT // 3600 AS hour_idx,
       sum((energy_j + $c * cpu_j + $n * node_j + $k * (idle_j + $c * cpu_idle_j + $n * node_idle_j))
           * CASE WHEN $pue THEN pue ELSE 1.0 END)
           AS energy_j
FROM rpt_rows
WHERE coalesce(zone, '') <> ''
GROUP BY ALL
HAVING sum(energy_j + $c * cpu_j + $n * node_j + $k * (idle_j + $c * cpu_idle_j + $n * node_idle_j)) <> 0
