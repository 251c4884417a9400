-- The intensity of every (zone, hour) that has energy (int_intensity_needed.sql), by the rule in
-- macros_intensity.sql, with how each was found (quality).
SELECT * FROM intensity_resolved('int_intensity_needed', $bound_h, $world_g_per_kwh)
