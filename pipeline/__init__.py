"""wattprint: Prometheus -> DuckDB carbon-accounting pipeline (batch CLI)."""

__version__ = "0.1.0"
