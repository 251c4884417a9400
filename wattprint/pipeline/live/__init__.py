"""Long-running services of the pipeline: `wattprint serve-intensity`, the live carbon-intensity exporter."""
