# One image for the whole of wattprint: `wattprint-exporter` (the DaemonSet), `wattprint serve-intensity`
# (the intensity exporter) and `wattprint` batch verbs (the monthly report CronJob). The Helm chart in
# helm/wattprint runs it; build and push it yourself:
#   docker build -t REGISTRY/wattprint:$(python -c 'import wattprint; print(wattprint.__version__)') .
# NVML comes from the host driver at run time (the NVIDIA container runtime mounts libnvidia-ml.so.1),
# so nothing of CUDA is in the image.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY wattprint ./wattprint
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# nobody: the chart runs every container as 65534 with a read-only root filesystem and HOME=/tmp
USER 65534
ENV HOME=/tmp
# metrics: exporter 9835, serve-intensity 9837
EXPOSE 9835 9837
ENTRYPOINT ["wattprint-exporter"]
