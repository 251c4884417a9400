-- The scope's energy per hour (hour index: hours since 1970), as the what-if moves it: the jobs' GPU energy,
-- their host energy when the cpu layer is selected ($c: 1 or 0), their node residual when the node layer is ($n), and
-- the idle share under the pro-rata policy ($k: 1 or 0; its host and node parts again with $c and $n).
CREATE OR REPLACE TEMP TABLE rpt_profile AS
SELECT epoch(hour_ts)::BIGINT // 3600 AS hour_idx,
       sum(energy_j + $c * cpu_j + $n * node_j + $k * (idle_j + $c * cpu_idle_j + $n * node_idle_j)) AS energy_j
FROM rpt_rows
GROUP BY 1
