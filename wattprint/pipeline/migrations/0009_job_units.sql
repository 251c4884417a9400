-- wattprint schema v9: a job's functional units (the SCI's R). Forward-only, like 0001.
-- Optional ledger columns `units` and `unit_name`: how many functional units the job produced or served (tokens
-- trained on, samples, requests), read from a CSV or YAML ledger; NULL for every other source and for every job
-- stored before v9. Both are set or both are NULL (the ledger importer checks it). Stored input only: the report
-- divides a phase's emissions by their sum (report/disclosure.py, functional_units).
ALTER TABLE jobs ADD COLUMN units DOUBLE;          -- > 0 and finite, or NULL
ALTER TABLE jobs ADD COLUMN unit_name VARCHAR;     -- e.g. tokens, samples; NULL exactly when units is NULL
