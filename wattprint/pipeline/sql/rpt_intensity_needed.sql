-- Every (zone, hour) the what-if prices: each configured zone ($zones) at each hour of rpt_profile, the input of
-- the model's intensity rule (macros_intensity.sql's intensity_resolved).
CREATE OR REPLACE TEMP TABLE rpt_intensity_needed AS
SELECT z.zone, p.hour_idx
FROM rpt_profile p
CROSS JOIN (SELECT unnest(CAST($zones AS VARCHAR[])) AS zone) z
