# syntax=docker/dockerfile:1
# captaindata-exporter container image.
#
#   docker build -t captaindata-exporter:0.1.0 .
#   docker run --rm -p 10237:10237 captaindata-exporter:0.1.0 --demo          # no config, simulated API
#   docker run --rm -p 10237:10237 -e CAPTAINDATA_API_KEY \
#       -v "$PWD/config.yaml:/etc/captaindata-exporter/config.yaml:ro" captaindata-exporter:0.1.0
#
# The config file refers to the API key as `api_key: "${CAPTAINDATA_API_KEY}"` (environment) or
# `api_key_file: /run/secrets/captaindata-api-key` (a mounted file). See docs/deployment.md.

# Pinned by tag; pin by digest too (python:3.11.13-slim-bookworm@sha256:...) for bit-for-bit rebuilds.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- Stage 1: build the wheels (the project's and its dependencies') -----------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# .dockerignore lets through only what the wheel is built from, and wheels/ when it exists.
COPY pyproject.toml README.md ./
COPY exporter/ exporter/
# `python3 -m venv` works on both the upstream image and a base of Debian packages (python3,
# python3-venv), whose system Python may not carry pip. With a wheels/ directory in the build context
# (air-gapped builds, see docs/deployment.md), every wheel comes from it and no index is contacted.
RUN --mount=type=bind,target=/context \
    if [ -d /context/wheels ]; then set -- --no-index --find-links=/context/wheels; fi \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel "$@" --wheel-dir /wheels .

# ---- Stage 2: runtime, no compilers, no build tools, no source tree ------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="captaindata-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Captain Data runs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# The state that survives restarts (docs/configuration.md#state), on a volume the exporter owns.
RUN install -d -o 10001 -g 10001 -m 0700 /var/lib/captaindata-exporter
VOLUME ["/var/lib/captaindata-exporter"]
ENV CAPTAINDATA_EXPORTER_STATE_PATH=/var/lib/captaindata-exporter
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Install from the wheels of stage 1 only (no index) into a virtualenv, then drop pip and friends from
# it, and check they are gone: nothing is built or installed at run time. The base's own Python is left
# alone: a Debian one with python3-pip is "externally managed" (PEP 668) and refuses pip uninstall, and
# its pip is not on the exporter's path (the venv comes first and has none).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m venv /opt/captaindata-exporter \
    && /opt/captaindata-exporter/bin/pip install --no-cache-dir --no-index --find-links=/wheels \
       captaindata-exporter \
    && /opt/captaindata-exporter/bin/pip uninstall --yes pip setuptools wheel \
    && if /opt/captaindata-exporter/bin/python -c "import pip" 2>/dev/null; then \
           echo "pip is still in the venv" >&2; exit 1; fi \
    && groupadd --system --gid 10001 exporter \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin exporter \
    && mkdir -p /etc/captaindata-exporter
# PATH in full: a base imported from a root filesystem tarball sets none.
ENV PATH=/opt/captaindata-exporter/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CAPTAINDATA_HEALTHCHECK_URL=http://127.0.0.1:10237/-/healthy
# Numeric so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 10237
# Probes $CAPTAINDATA_HEALTHCHECK_URL, the default listen address (:10237) unless changed: set it too
# when --web.listen-address moves the port. Python, because the slim image has no curl or wget.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = os.environ.get('CAPTAINDATA_HEALTHCHECK_URL', 'http://127.0.0.1:10237/-/healthy'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
ENTRYPOINT ["captaindata-exporter"]
CMD ["--config", "/etc/captaindata-exporter/config.yaml"]
