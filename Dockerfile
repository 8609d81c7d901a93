# syntax=docker/dockerfile:1
# One Dockerfile, three images:
#   operator     the kopf operator                        docker build --target operator .
#   runtime      the model server for CPU targets         docker build --target runtime .
#   runtime-gpu  the model server with Intel GPU/NPU      docker build --target runtime-gpu .
# Builds unchanged with docker/buildx; scripts/build-images.sh builds it with podman on
# machines without a registry.

ARG DEBIAN=debian:bookworm-slim

# ---- build stages: pip and the build backend live here only ----------------------------
FROM ${DEBIAN} AS python-build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY scripts/slim-venv.sh /usr/local/bin/
# Each venv is built from its own side's sources plus kubevino_common: the operator image
# carries no runtime code and the runtime images no operator code.
COPY runtime/kubevino_common runtime/kubevino_common
# Build machines behind a TLS-inspecting proxy pass their CA bundle's path (mounted into the
# build) as the build argument PIP_CERT. It is declared in each stage that runs pip because
# build arguments are scoped to a stage; elsewhere pip uses its own bundle.

FROM python-build AS operator-venv
ARG PIP_CERT
COPY operator/kubevino_operator operator/kubevino_operator
RUN python3 -m venv /opt/kubevino \
 && /opt/kubevino/bin/pip install --no-cache-dir --no-compile -c constraints.txt ".[operator]" \
 && slim-venv.sh /opt/kubevino

FROM python-build AS runtime-venv
ARG PIP_CERT
COPY runtime/kubevino_runtime runtime/kubevino_runtime
RUN python3 -m venv /opt/kubevino \
 && /opt/kubevino/bin/pip install --no-cache-dir --no-compile -c constraints.txt ".[runtime]" \
 && slim-venv.sh /opt/kubevino

# The CPU image needs neither the GPU nor the NPU plugin (a quarter of the wheel): the
# operator sends every target that names GPU or NPU to runtime-gpu.
FROM runtime-venv AS runtime-cpu-venv
RUN cd /opt/kubevino/lib/python3*/site-packages/openvino/libs \
 && rm -f libopenvino_intel_gpu_plugin.so libopenvino_intel_npu_plugin.so cache.json

# ---- final stages: Debian's python3 and one venv, nothing else --------------------------
FROM ${DEBIAN} AS python-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/* \
 && groupadd --gid 10001 kubevino \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin kubevino
ENV PATH=/opt/kubevino/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/kubevino/kubevino" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="kubevino" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
WORKDIR /tmp

FROM python-base AS operator
COPY --from=operator-venv /opt/kubevino /opt/kubevino
LABEL org.opencontainers.image.title="kubevino-operator" \
      org.opencontainers.image.description="Reconciles InferenceModels into OpenVINO model servers"
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s \
  CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["kubevino"]
CMD ["operator", "--health-port", "8080"]

# What both model-server images share: ports, health check, entry point (metadata only; the
# user is set last in each, after the GPU image's packages are installed as root).
FROM python-base AS server-base
EXPOSE 8000 9000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s \
  CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/v2/health/live', timeout=2)"]
ENTRYPOINT ["kubevino-serve"]

FROM server-base AS runtime
COPY --from=runtime-cpu-venv /opt/kubevino /opt/kubevino
LABEL org.opencontainers.image.title="kubevino-runtime" \
      org.opencontainers.image.description="OpenVINO model server (KServe v2, TF-Serving REST) for CPU"
USER 10001:10001

FROM server-base AS runtime-gpu
# The wheel carries the GPU and NPU plugins; the GPU plugin needs Intel's OpenCL driver and
# the Level Zero loader from the distribution. Device access comes from the pod (render
# group, device plugin), never from the image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends intel-opencl-icd ocl-icd-libopencl1 libze1 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/*
COPY --from=runtime-venv /opt/kubevino /opt/kubevino
LABEL org.opencontainers.image.title="kubevino-runtime-gpu" \
      org.opencontainers.image.description="OpenVINO model server (KServe v2, TF-Serving REST) for Intel GPU and NPU"
USER 10001:10001
