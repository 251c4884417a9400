# Two images from one Dockerfile, both installed from the hash-pinned lock files in requirements/ (both with the
# kubernetes extra: grpcio for the kubelet's PodResources API, used by --job-discovery kubernetes):
#   exporter  `wattprint-exporter` alone (the DaemonSet): the base dependencies, neither DuckDB nor Arrow
#   full      (the default target) `wattprint` with the pipeline extra: `wattprint serve-intensity` (the
#             intensity exporter) and the batch verbs (the monthly report CronJob); wattprint-exporter too
# The Helm chart in helm/wattprint runs them (exporter.image, image); build and push them yourself:
#   V=$(python3 -c 'import wattprint; print(wattprint.__version__)')
#   docker build --target exporter -t REGISTRY/wattprint-exporter:$V .
#   docker build --target full -t REGISTRY/wattprint:$V .
# NVML comes from the host driver at run time (the NVIDIA container runtime mounts libnvidia-ml.so.1),
# so nothing of CUDA is in either image. Nor of ROCm: for AMD GPUs (--backend amdsmi), Dockerfile.amdsmi adds ROCm's
# amd-smi library on top of the exporter image (a separate file, so no build of these targets fetches ROCm).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY requirements/build.txt requirements/build.txt
RUN pip install --no-cache-dir --require-hashes -r requirements/build.txt
COPY pyproject.toml README.md LICENSE ./
COPY wattprint ./wattprint
# No build isolation: the backend is the pinned one above, nothing is fetched unpinned.
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM python:3.11-slim-bookworm AS exporter
LABEL org.opencontainers.image.title="wattprint-exporter" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY requirements/exporter.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels
# nobody: the chart runs every container as 65534 with a read-only root filesystem and HOME=/tmp
USER 65534
ENV HOME=/tmp
EXPOSE 9835
ENTRYPOINT ["wattprint-exporter"]

FROM python:3.11-slim-bookworm AS full
LABEL org.opencontainers.image.title="wattprint" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY requirements/pipeline.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels
USER 65534
ENV HOME=/tmp
# metrics: exporter 9835, serve-intensity 9837
EXPOSE 9835 9837
ENTRYPOINT ["wattprint"]
