-- Per host and UTC hour: how many wattprint_cpu_rapl_up samples there were and how many said every RAPL zone was
-- read (1). A host with none is one whose exporter exported no RAPL series (collector off, older exporter); the
-- reports' data quality names both cases. Two series of one host at one step (another scrape label) count once.
WITH pts AS (
    SELECT ss.stream_id, sm.ts, max(sm.value) AS value
    FROM samples sm
    JOIN stg_series_stream ss USING (series_id)
    WHERE ss.kind = 'rapl_up'
    GROUP BY ALL
)
SELECT to_timestamp(epoch_us(p.ts) // 3600000000 * 3600) AS hour_ts, st.cluster, st.hostname,
       count(*) AS samples,
       count(*) FILTER (WHERE p.value > 0.5) AS readable_samples
FROM pts p
JOIN streams st USING (stream_id)
GROUP BY ALL
-- stored in a fixed order: the reports add these rows up in it, so equal results give equal reports
ORDER BY ALL
