"""wattprint: Prometheus -> DuckDB carbon-accounting pipeline (batch CLI)."""

from .. import __version__

__all__ = ["__version__"]
