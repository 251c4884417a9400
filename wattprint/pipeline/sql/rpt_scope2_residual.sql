-- The residual mixes of the config (zone, year, gCO2eq/kWh, source), filled by report/scope2.py.
CREATE OR REPLACE TEMP TABLE rpt_scope2_residual (zone VARCHAR, year INTEGER, g_per_kwh DOUBLE, source VARCHAR)
