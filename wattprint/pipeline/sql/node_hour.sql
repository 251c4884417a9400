-- Whole-node energy per (cluster, node, UTC hour) from the BMC: the input of the node layer (fct_node_hour.sql).
-- Two kinds of reading, both per host (stg_series_stream.sql):
--  node        an energy counter (the exporter's Redfish / IPMI collector, wattprint_node_energy_joules_total), by
--              the counter rules every energy counter follows (macros_counter_deltas.sql); its first sample counts
--              nothing (a BMC's counter may run since the BMC started, not since the exporter did)
--  node_power  a power gauge (ipmi_exporter's ipmi_dcmi_power_consumption_watts), integrated by the trapezoid rule
--              between samples (quality 'power_integrated'); across a gap longer than the bound nothing is invented
-- Intervals are cut at hour boundaries pro rata by time, as every interval is. A node-hour keeps ONE reading: the one
-- that covers most of the hour, the counter on a tie (the usual case: both cover all of it), then by reading name
-- (domain: redfish | ipmi | '') and stream, so two readings of one node are never added up; `readings` says how many
-- there were. The power gauge so fills exactly the node-hours the counter does not cover (a node without the
-- exporter's collector, the hours before it was deployed).
--  covered_s  seconds of the hour the kept reading covers (a counter across a gap covers it: its energy is kept)
--  quality    counter | counter_reset | gap | gap_reset | counter_stepback (the least exact of its intervals) |
--             power_integrated
WITH
counted AS (
    SELECT stream_id, quality, amount AS energy_j, epoch_us(start_ts) AS s_us, epoch_us(end_ts) AS e_us
    FROM counter_deltas(['node'], $max_gap_s)
),
pts AS (
    -- one value per gauge and step (two series of one stream at one step, e.g. a relabelled duplicate: the higher)
    SELECT ss.stream_id, sm.ts, max(sm.value) AS value
    FROM samples sm
    JOIN stg_series_stream ss USING (series_id)
    WHERE ss.kind = 'node_power'
    GROUP BY ALL
),
seq AS (
    SELECT *, lag(ts) OVER w AS prev_ts, lag(value) OVER w AS prev_value
    FROM pts
    WINDOW w AS (PARTITION BY stream_id ORDER BY ts)
),
integrated AS (
    SELECT stream_id, 'power_integrated' AS quality,
           ((prev_value + value) / 2 * (epoch(ts) - epoch(prev_ts)))::DOUBLE AS energy_j,
           epoch_us(prev_ts) AS s_us, epoch_us(ts) AS e_us
    FROM seq
    WHERE prev_ts IS NOT NULL AND epoch(ts) - epoch(prev_ts) <= $max_gap_s
),
cut AS (
    SELECT stream_id, quality, h AS hour_idx, energy_j * hour_share(s_us, e_us, h) AS energy_j,
           hour_overlap_us(s_us, e_us, h) AS covered_us
    FROM (SELECT *, unnest(hours_of(s_us, e_us)) AS h
          FROM (SELECT * FROM counted UNION ALL SELECT * FROM integrated))
),
per_stream AS (
    SELECT c.stream_id, c.hour_idx, st.cluster, st.node, st.hostname, st.kind, st.domain,
           exact_sum(c.energy_j) AS energy_j,
           sum(c.covered_us) / 1e6 AS covered_s,
           arg_max(c.quality, CASE c.quality WHEN 'counter' THEN 0 WHEN 'first_sample' THEN 1
                                             WHEN 'counter_reset' THEN 2 WHEN 'gap' THEN 3 WHEN 'gap_reset' THEN 4
                                             WHEN 'counter_stepback' THEN 5 ELSE 6 END) AS quality
    FROM cut c
    JOIN streams st USING (stream_id)
    GROUP BY ALL
)
SELECT to_timestamp(hour_idx * 3600) AS hour_ts, hour_idx, cluster, node, hostname,
       CASE kind WHEN 'node' THEN 'counter' ELSE 'power' END AS reading_kind,
       domain AS reading, energy_j, covered_s, quality,
       count(*) OVER (PARTITION BY cluster, node, hour_idx) AS readings
FROM per_stream
QUALIFY row_number() OVER (PARTITION BY cluster, node, hour_idx
                           ORDER BY covered_s DESC, kind = 'node' DESC, domain, hostname, stream_id) = 1
-- stored in a fixed order: the reports add these rows up in it, so equal results give equal reports
ORDER BY ALL
