-- wattprint schema v7: incremental builds. Forward-only, like 0001.
--  build_info.settings_sha256: what the build's results depend on besides the stored inputs (clusters, zones, PUE,
--                              gap bound, intensity fallbacks: model.BuildSettings.fingerprint). An import rebuilds
--                              only the hours it touched while it is the same; a change rebuilds everything.
ALTER TABLE build_info ADD COLUMN settings_sha256 VARCHAR;
