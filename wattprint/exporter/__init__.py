"""wattprint-exporter: per-node GPU energy exporter for Prometheus."""

from .. import __version__

__all__ = ["__version__"]
