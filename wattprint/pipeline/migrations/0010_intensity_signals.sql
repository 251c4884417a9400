-- wattprint schema v10: average and marginal intensity side by side, as two signals. Forward-only, like 0001.
--
-- Before v10 a zone had one intensity per hour, whatever its basis: a WattTime co2_moer import (basis `marginal`)
-- replaced the zone's average (lifecycle or direct) data and was priced into the headline. Average intensity
-- (attributional: what the grid emitted per kWh on average, the GHG Protocol's location-based figure) and a
-- marginal rate (consequential: what the generators answering a change in load emit) answer different questions and
-- must never be averaged, replace one another or be summed (docs/methodology.md section 11).
--
--   average signal:   intensity_points, intensity_hourly (bases lifecycle and direct), as before: what the model,
--                     the what-if and the time-shift what-if read (macros_intensity.sql).
--   marginal signal:  marginal_points, marginal_hourly (basis marginal), the same columns and the same rules: points
--                     disjoint per zone, an import replaces only the stored time it overlaps, each hour the
--                     time-weighted mean of its points with covered_s their union (store.py and
--                     sql/stg_intensity_import*.sql run once per signal, on that signal's two tables). Read only by
--                     the report's marginal section (report/marginal.py).
--
-- Why separate tables rather than a signal column in the keys: the average tables stay exactly what they were, so
-- a marginal import cannot move any average-based figure, not even in its last bit. The what-if and the time-shift
-- what-if add doubles in the order their joins return rows, and DuckDB picks a join's sides from the tables' sizes:
-- with the marginal rows in intensity_hourly the demo's what-if moved in the 16th digit. One import path still
-- serves both signals (the import SQL names its tables by parameter), so there is one clip-and-replace rule.
--
-- Stored rows with basis 'marginal' move to the marginal tables: from v10 they no longer price the headline. The
-- results built from them (fct_job_gpu_hour, fct_job_cpu_hour) keep their old figures until the next build
-- (`wattprint build`). Mixed bases stay refused within a signal (lifecycle against direct), as before.

CREATE TABLE marginal_points (
    zone         VARCHAR NOT NULL,
    start_ts     TIMESTAMPTZ NOT NULL,
    end_ts       TIMESTAMPTZ NOT NULL,
    g_per_kwh    DOUBLE NOT NULL,      -- gCO2eq/kWh (WattTime's lbs/MWh converted on import)
    basis        VARCHAR NOT NULL,     -- marginal
    source       VARCHAR NOT NULL,     -- watttime, ...
    is_estimated BOOLEAN NOT NULL,     -- e.g. WattTime's imputed_data_used
    origin       VARCHAR NOT NULL,     -- file:line, JSON path or URL of the point (what is left of it after clipping)
    imported_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (zone, start_ts)
);

CREATE TABLE marginal_hourly (
    zone         VARCHAR NOT NULL,
    hour_ts      TIMESTAMPTZ NOT NULL,
    g_per_kwh    DOUBLE NOT NULL,      -- the time-weighted mean of the hour's marginal points
    basis        VARCHAR NOT NULL,     -- marginal
    source       VARCHAR NOT NULL,
    is_estimated BOOLEAN NOT NULL,
    covered_s    INTEGER NOT NULL,     -- seconds of the hour the points cover
    origin       VARCHAR NOT NULL,
    imported_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (zone, hour_ts)
);

INSERT INTO marginal_points (zone, start_ts, end_ts, g_per_kwh, basis, source, is_estimated, origin, imported_at)
SELECT zone, start_ts, end_ts, g_per_kwh, basis, source, is_estimated, origin, imported_at
FROM intensity_points WHERE basis = 'marginal';
DELETE FROM intensity_points WHERE basis = 'marginal';

INSERT INTO marginal_hourly (zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin, imported_at)
SELECT zone, hour_ts, g_per_kwh, basis, source, is_estimated, covered_s, origin, imported_at
FROM intensity_hourly WHERE basis = 'marginal';
DELETE FROM intensity_hourly WHERE basis = 'marginal';
