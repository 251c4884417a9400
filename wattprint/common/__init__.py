"""What the exporter and the pipeline share, importing neither: the HTTP server with exporter-toolkit TLS and
basic auth (web, webconfig; `wattprint-exporter` and `wattprint serve-intensity` serve through it), outbound HTTP
that keeps credentials on their origin (safehttp), the redaction of secrets from printed text (redact), and the
logfmt/JSON log lines (logs)."""
