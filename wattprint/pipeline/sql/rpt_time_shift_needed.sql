-- Every (zone, hour) the time-shift what-if prices: each hour of the profile moved later by 0 to $slack_h hours, in
-- its own zone (the input of the model's intensity rule, macros_intensity.sql's intensity_resolved).
CREATE OR REPLACE TEMP TABLE rpt_shift_needed AS
SELECT DISTINCT p.zone, p.hour_idx + s.shift_h AS hour_idx
FROM (SELECT DISTINCT zone, hour_idx FROM rpt_shift_profile) p
CROSS JOIN (SELECT range AS shift_h FROM range(0, $slack_h + 1)) s
