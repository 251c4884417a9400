-- Streams to price. A power gauge is used only for a GPU that has no energy counter: the counter is exact.
INSERT INTO streams (stream_id, source, kind, cluster, hostname, gpu, uuid, job_id, model, socket, domain)
SELECT DISTINCT p.stream_id, p.source, p.kind, p.cluster, p.hostname, p.gpu, p.uuid, p.job_id, p.model, p.socket,
       p.domain
FROM series_stream p
WHERE p.kind <> 'gpu_power'
   OR NOT EXISTS (
        SELECT 1 FROM series_stream c
        WHERE c.kind = 'gpu' AND c.cluster = p.cluster AND c.hostname = p.hostname
          AND c.gpu = p.gpu AND c.uuid = p.uuid)
