"""wattprint: measured GPU energy and carbon accounting.

Two sides in one distribution: `wattprint.exporter` (the per-node daemon `wattprint-exporter`, which never
imports the pipeline, duckdb or pyarrow) and `wattprint.pipeline` (the batch CLI `wattprint` and
`wattprint serve-intensity`). The version below is the only one: pyproject reads it, both CLIs print it,
the chart's appVersion and the Dockerfile are checked against it.
"""

__version__ = "0.1.0"
