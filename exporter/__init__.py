"""wattprint-exporter: per-node GPU energy exporter for Prometheus."""

__version__ = "0.1.0"
