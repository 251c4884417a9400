-- What the report's AMD device-metrics-exporter series held that was not priced as it stands (wattprint/pipeline/
-- amd.py): the secondary partitions whose energy lines were stored but never priced (rule 2), and the samples that
-- were no reading (rule 4, macros.sql unread: 0 from an exporter that writes a field the platform does not support
-- as 0): the GPUs whose energy counter read so, the GPU-hours of such samples, and of those the GPU-hours with a step
-- at which every power gauge of the GPU read so too (nothing measured the GPU then). Over the window [$start, $end),
-- on every node ($fleet) or on the nodes the scope's rows are on (node_key, macros.sql). From the stored samples: the
-- months `wattprint compact` closed have none left, and count nothing here.
WITH
nodes AS (
    SELECT DISTINCT node_key(hostname) AS node FROM rpt_rows
),
amd AS (
    SELECT series_id, kind, node_key(coalesce(hostname, '')) AS node,
           node_key(coalesce(hostname, '')) || '/' || coalesce(gpu, '') || '/' || coalesce(uuid, '') AS gpu_id
    FROM series
    WHERE source = 'amd' AND ($fleet OR node_key(coalesce(hostname, '')) IN (SELECT node FROM nodes))
),
pts AS (
    SELECT a.kind, a.node, a.gpu_id, sm.ts, unread('amd', sm.value) AS no_reading
    FROM samples sm
    JOIN amd a USING (series_id)
    WHERE sm.ts >= $start AND sm.ts < $end
),
energy_hours AS (
    SELECT DISTINCT gpu_id, epoch_us(ts) // 3600000000 AS h FROM pts WHERE kind = 'gpu_energy' AND no_reading
),
power_hours AS (
    SELECT DISTINCT gpu_id, epoch_us(ts) // 3600000000 AS h
    FROM pts WHERE kind = 'gpu_power' GROUP BY gpu_id, ts HAVING bool_and(no_reading)
)
SELECT count(DISTINCT gpu_id) FILTER (WHERE kind = 'partition_energy') AS partitions,
       count(DISTINCT node) FILTER (WHERE kind = 'partition_energy') AS partition_nodes,
       count(DISTINCT gpu_id) FILTER (WHERE kind = 'gpu_energy' AND no_reading) AS unread_energy_gpus,
       (SELECT count(*) FROM energy_hours) AS unread_energy_gpu_hours,
       (SELECT count(*) FROM energy_hours JOIN power_hours USING (gpu_id, h)) AS unread_power_gpu_hours
FROM pts
