-- Identity rules the derived tables share, written once (the Python twin of the node rules is pipeline/nodes.py;
-- tests/test_nodes.py checks both give the same answers).
--  host_part(h):          the host name in lower case, without surrounding blanks and without a ':port' suffix
--  node_key(h):           what two spellings of one node share: the short name (before the first dot), or the whole
--                         address for an IP. sacct's `gpu01`, a FQDN `gpu01.cluster.local` and `GPU01` are one node.
--  node_matches(h, glob): a cluster's `nodes` glob against a host: full name or short name, case-insensitively
--  gpu_key(c, h, g, u):   one physical GPU, whichever exporter reports it: its UUID (globally unique, any case),
--                         else cluster / node / index
--  unread(source, v):     a sample that is not a reading: AMD's device-metrics-exporter writes a field the platform
--                         does not support as 0 (up to v1.3.1), and its energy accumulator (uJ since the GPU's reset)
--                         and socket power are never 0 when read (wattprint/pipeline/amd.py, rule 4)
CREATE OR REPLACE TEMP MACRO host_part(h) AS
    CASE WHEN regexp_matches(lower(regexp_replace(h, '^\s+|\s+$', '', 'g')), '^\[.*\](:[0-9]+)?$')
              THEN regexp_extract(lower(regexp_replace(h, '^\s+|\s+$', '', 'g')), '^\[(.*)\]', 1)
         WHEN regexp_matches(lower(regexp_replace(h, '^\s+|\s+$', '', 'g')), '^[^:]*:[0-9]+$')
              THEN split_part(lower(regexp_replace(h, '^\s+|\s+$', '', 'g')), ':', 1)
         ELSE lower(regexp_replace(h, '^\s+|\s+$', '', 'g')) END;
CREATE OR REPLACE TEMP MACRO node_key(h) AS
    CASE WHEN regexp_matches(host_part(h), '^[0-9.]+$') OR contains(host_part(h), ':') THEN host_part(h)
         ELSE split_part(host_part(h), '.', 1) END;
CREATE OR REPLACE TEMP MACRO node_matches(h, pattern) AS
    regexp_replace(h, '^\s+|\s+$', '', 'g') <> ''
    AND (lower(regexp_replace(h, '^\s+|\s+$', '', 'g')) GLOB lower(pattern)
         OR host_part(h) GLOB lower(pattern) OR node_key(h) GLOB lower(pattern));
CREATE OR REPLACE TEMP MACRO unread(source, v) AS source = 'amd' AND v = 0;
CREATE OR REPLACE TEMP MACRO gpu_key(c, h, g, u) AS
    CASE WHEN trim(coalesce(u, '')) <> '' THEN 'uuid:' || lower(trim(u))
         ELSE coalesce(c, '') || '/' || node_key(coalesce(h, '')) || '/' || coalesce(g, '') END;
-- emissions_g(energy_j, g_per_kwh, pue): grams CO2eq of energy_j joules priced at g_per_kwh gCO2eq/kWh with the
-- facility's PUE (1.0: before PUE). The one emissions formula: the results (int_priced_pieces.sql) and the reports'
-- figures before PUE (rpt_*.sql) all call it; its Python twin, for manual phases, is pipeline/emissions.py.
CREATE OR REPLACE TEMP MACRO emissions_g(energy_j, g_per_kwh, pue) AS energy_j / 3600000.0 * pue * g_per_kwh;
-- exact(x): x rounded to 1e-9 (nanojoules, nanoseconds) as a decimal; exact_sum(x) the sum of those, as a double.
-- Decimals add as integers, so a sum has the same bits whatever order its rows arrive in: DuckDB adds doubles in an
-- order that varies with its threads, and equal inputs must give equal results, bit for bit (incremental builds are
-- checked against full ones that way). Every sum of energy or time in the model is one of these.
CREATE OR REPLACE TEMP MACRO exact(x) AS CAST(x AS DECIMAL(38, 9));
CREATE OR REPLACE TEMP MACRO exact_sum(x) AS CAST(sum(CAST(x AS DECIMAL(38, 9))) AS DOUBLE);
-- Cutting a span [s_us, e_us) (epoch microseconds) at UTC hours: hours_of gives the hour indexes it touches,
-- hour_overlap_us the microseconds of it inside hour h, hour_share that part of it (pro rata by time, as every
-- interval is cut; the intensity import weighs its points by the same overlap).
CREATE OR REPLACE TEMP MACRO hours_of(s_us, e_us) AS range(s_us // 3600000000, (e_us - 1) // 3600000000 + 1);
CREATE OR REPLACE TEMP MACRO hour_overlap_us(s_us, e_us, h) AS
    least(e_us, (h + 1) * 3600000000) - greatest(s_us, h * 3600000000);
CREATE OR REPLACE TEMP MACRO hour_share(s_us, e_us, h) AS
    CASE WHEN s_us // 3600000000 = (e_us - 1) // 3600000000 THEN 1.0
         ELSE hour_overlap_us(s_us, e_us, h) / (e_us - s_us) END;
