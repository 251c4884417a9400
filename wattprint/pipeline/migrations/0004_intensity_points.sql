-- wattprint schema v4: one spelling per intensity zone, and the imported intensity points themselves.
-- Forward-only, like 0001.
--
--  intensity_points:  each imported point [start_ts, end_ts) of a zone (disjoint within a zone). An import replaces
--                     only the stored parts it overlaps (older points are clipped to what it does not cover), and
--                     intensity_hourly is recomputed from the points: per (zone, hour) the time-weighted mean of
--                     every point in the hour, covered_s their union. Filled here from the existing hours as
--                     [hour_ts, hour_ts + covered_s) (where in the hour a partly covered hour's data lay was not
--                     kept before v4; its start is assumed).
--  zone spelling:     zones compare case-insensitively; the canonical spelling is the shipped annual table's
--                     (pipeline/data/intensity_annual.csv) when it knows the zone, else upper case, with `UK` read
--                     as `GB` and whitespace around the zone and around a provider:region colon dropped
--                     (pipeline/zones.py is the same rule in Python). Stored zones of intensity_hourly and of the
--                     last build's clusters are re-spelled; where two stored hours become one (`FR` and `fr`), the
--                     most recently imported is kept. Result tables keep their zones until the next build.
CREATE TABLE intensity_points (
    zone         VARCHAR NOT NULL,
    start_ts     TIMESTAMPTZ NOT NULL,
    end_ts       TIMESTAMPTZ NOT NULL,
    g_per_kwh    DOUBLE NOT NULL,
    basis        VARCHAR NOT NULL,     -- lifecycle | direct | marginal
    source       VARCHAR NOT NULL,
    is_estimated BOOLEAN NOT NULL,
    origin       VARCHAR NOT NULL,     -- file:line, JSON path or URL of the point (what is left of it after clipping)
    imported_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (zone, start_ts)
);

CREATE OR REPLACE TEMP TABLE zone_spelling_0004 AS
WITH known AS (  -- the shipped table's zones as of this migration; ASCII case folding, as pipeline/zones.py
    SELECT translate(zone, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') AS zkey, zone FROM (VALUES
        ('AE'), ('AR'), ('AT'), ('AU'), ('BE'), ('BG'), ('BH'), ('BR'), ('CA'), ('CH'), ('CL'), ('CN'), ('CO'),
        ('CZ'), ('DE'), ('DK'), ('EE'), ('EG'), ('ES'), ('FI'), ('FR'), ('GB'), ('GR'), ('HK'), ('HR'), ('HU'),
        ('ID'), ('IE'), ('IL'), ('IN'), ('IS'), ('IT'), ('JP'), ('KE'), ('KR'), ('LT'), ('LU'), ('LV'), ('MX'),
        ('MY'), ('NG'), ('NL'), ('NO'), ('NZ'), ('PH'), ('PK'), ('PL'), ('PT'), ('QA'), ('RO'), ('SA'), ('SE'),
        ('SG'), ('SI'), ('SK'), ('TH'), ('TR'), ('TW'), ('US'), ('UY'), ('VN'), ('ZA'), ('gcp:africa-south1'),
        ('gcp:asia-east1'), ('gcp:asia-east2'), ('gcp:asia-northeast1'), ('gcp:asia-northeast2'),
        ('gcp:asia-northeast3'), ('gcp:asia-south1'), ('gcp:asia-south2'), ('gcp:asia-southeast1'),
        ('gcp:asia-southeast2'), ('gcp:australia-southeast1'), ('gcp:australia-southeast2'), ('gcp:europe-central2'),
        ('gcp:europe-north1'), ('gcp:europe-north2'), ('gcp:europe-southwest1'), ('gcp:europe-west1'),
        ('gcp:europe-west2'), ('gcp:europe-west3'), ('gcp:europe-west4'), ('gcp:europe-west6'), ('gcp:europe-west8'),
        ('gcp:europe-west9'), ('gcp:europe-west10'), ('gcp:europe-west12'), ('gcp:me-central1'), ('gcp:me-central2'),
        ('gcp:me-west1'), ('gcp:northamerica-northeast1'), ('gcp:northamerica-northeast2'),
        ('gcp:northamerica-south1'), ('gcp:southamerica-east1'), ('gcp:southamerica-west1'), ('gcp:us-central1'),
        ('gcp:us-central2'), ('gcp:us-east1'), ('gcp:us-east2'), ('gcp:us-east4'), ('gcp:us-east5'),
        ('gcp:us-south1'), ('gcp:us-west1'), ('gcp:us-west2'), ('gcp:us-west3'), ('gcp:us-west4'), ('aws:us-east-1'),
        ('aws:us-west-2'), ('aws:us-east-2'), ('aws:us-west-1'), ('aws:ca-central-1'), ('aws:sa-east-1'),
        ('aws:eu-west-1'), ('aws:eu-west-2'), ('aws:eu-west-3'), ('aws:eu-central-1'), ('aws:eu-central-2'),
        ('aws:eu-north-1'), ('aws:eu-south-1'), ('aws:eu-south-2'), ('aws:ap-northeast-1'), ('aws:ap-northeast-2'),
        ('aws:ap-northeast-3'), ('aws:ap-southeast-1'), ('aws:ap-southeast-2'), ('aws:ap-southeast-3'),
        ('aws:ap-south-1'), ('aws:ap-east-1'), ('aws:me-south-1'), ('aws:me-central-1'), ('aws:il-central-1'),
        ('aws:af-south-1'), ('azure:eastus'), ('azure:eastus2'), ('azure:centralus'), ('azure:southcentralus'),
        ('azure:westus'), ('azure:westus2'), ('azure:canadacentral'), ('azure:canadaeast'), ('azure:brazilsouth'),
        ('azure:northeurope'), ('azure:westeurope'), ('azure:uksouth'), ('azure:ukwest'), ('azure:francecentral'),
        ('azure:germanywestcentral'), ('azure:swedencentral'), ('azure:switzerlandnorth'), ('azure:norwayeast'),
        ('azure:italynorth'), ('azure:polandcentral'), ('azure:spaincentral'), ('azure:japaneast'),
        ('azure:koreacentral'), ('azure:southeastasia'), ('azure:eastasia'), ('azure:australiaeast'),
        ('azure:centralindia'), ('azure:southafricanorth'), ('azure:uaenorth'), ('world')
    ) v(zone)
),
stored AS (
    SELECT zone AS stored FROM intensity_hourly
    UNION SELECT zone FROM clusters WHERE zone IS NOT NULL
),
spaced AS (
    SELECT stored, regexp_replace(regexp_replace(stored, '^\s+|\s+$', '', 'g'), '^([^:]*?)\s*:\s*', '\1:') AS z
    FROM stored
),
keyed AS (
    SELECT stored, CASE WHEN zkey = 'uk' THEN 'gb' ELSE zkey END AS zkey
    FROM (SELECT stored, translate(z, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') AS zkey FROM spaced)
)
SELECT k.stored, coalesce(n.zone, translate(k.zkey, 'abcdefghijklmnopqrstuvwxyz', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')) AS zone
FROM keyed k LEFT JOIN known n USING (zkey);

CREATE OR REPLACE TEMP TABLE intensity_hourly_0004 AS
SELECT s.zone, h.hour_ts, h.g_per_kwh, h.basis, h.source, h.is_estimated, h.covered_s, h.origin, h.imported_at
FROM intensity_hourly h JOIN zone_spelling_0004 s ON s.stored = h.zone
QUALIFY row_number() OVER (PARTITION BY s.zone, h.hour_ts
                           ORDER BY h.imported_at DESC, h.zone = s.zone DESC, h.zone, h.origin) = 1;

DELETE FROM intensity_hourly;
INSERT INTO intensity_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin, imported_at)
SELECT zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin, imported_at FROM intensity_hourly_0004;

INSERT INTO intensity_points (zone, start_ts, end_ts, g_per_kwh, basis, source, is_estimated, origin, imported_at)
SELECT zone, hour_ts, hour_ts + to_seconds(CAST(least(covered_s, 3600) AS BIGINT)), g_per_kwh, basis, source,
       is_estimated, origin, imported_at
FROM intensity_hourly WHERE covered_s > 0;

UPDATE clusters SET zone = s.zone FROM zone_spelling_0004 s WHERE clusters.zone = s.stored AND clusters.zone <> s.zone;

DROP TABLE intensity_hourly_0004;
DROP TABLE zone_spelling_0004;
