# ComfyUI Model Resolver sidecar: the HTTP API on 5002 and the Gradio UI on 5001 (also at :5002/gradio/).
#   docker build -t comfyui-resolver:production .
#   docker run -d -e CMR_COMFYUI_ROOT=/workspace/ComfyUI -p 5002:5002 -p 5001:5001 -v /workspace:/workspace comfyui-resolver:production
# Without CMR_API_KEY a key is generated on first start, kept 0600 in /data and printed once (docker logs).
# Build with --build-arg EXTRAS=monitor for an API-only image without gradio (~67 MB RSS instead of ~158 MB;
# README, "Memory").
FROM python:3.11-slim

ARG EXTRAS=ui,monitor,redis

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    CMR_API_HOST=0.0.0.0 \
    CMR_API_PORT=5002 \
    CMR_GRADIO_HOST=0.0.0.0 \
    CMR_GRADIO_PORT=5001 \
    CMR_ENABLE_UI=true \
    CMR_COMFYUI_ROOT=/comfyui \
    CMR_DATA_DIR=/data \
    CMR_LOG_LEVEL=INFO

WORKDIR /app
COPY pyproject.toml README.md ./
COPY comfyui_model_resolver ./comfyui_model_resolver
COPY sidecar ./sidecar
COPY api ./api
COPY start-production.sh ./

# DL3013: this installs the project from the copied source; its dependency ranges are in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[${EXTRAS}]" \
    && groupadd --gid 10001 cmr \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin cmr \
    && mkdir -p /comfyui/models /data \
    && chown -R cmr:cmr /comfyui /data

USER 10001:10001
# The ComfyUI install (models land in /comfyui/models) and the resolver's caches and job state.
VOLUME ["/comfyui", "/data"]
EXPOSE 5002 5001

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('CMR_API_PORT', '5002'); urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=4); sys.exit(0)"]

ENTRYPOINT ["./start-production.sh"]
