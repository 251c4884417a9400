-- The share of each cluster-period's Scope 2 electricity each contractual instrument covers (fraction, 0..1) and
-- the instrument's emission factor: filled by report/scope2.py (the matching), joined by rpt_scope2_priced.sql.
CREATE OR REPLACE TEMP TABLE rpt_scope2_cover (cluster VARCHAR, period_ts TIMESTAMPTZ, instrument VARCHAR,
                                               ord INTEGER, fraction DOUBLE, g_per_kwh DOUBLE)
