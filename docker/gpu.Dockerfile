# The same server on a CUDA box. Weights live on a volume:
#   docker build -f docker/gpu.Dockerfile -t creative-studio .
#   docker run --gpus all -p 8000:8000 -v studio-models:/models -v studio-data:/data \
#     -e STUDIO_PRELOAD=flux-schnell creative-studio
#   docker run --gpus all -v studio-models:/models creative-studio python scripts/download_models.py flux-schnell
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    STUDIO_DATA_DIR=/data \
    STUDIO_MODELS_DIR=/models \
    STUDIO_DEVICE=cuda \
    HF_HOME=/models/.hf-cache

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
RUN python3 -m venv /venv
ENV PATH=/venv/bin:$PATH

# The same constraints as everywhere (torch==2.13.0, as the tests run it); PyPI's Linux wheels
# of torch are CUDA builds. torch goes first, so nothing below pulls another one.
COPY constraints.txt ./
RUN pip install --constraint constraints.txt torch==2.13.0

COPY pyproject.toml README.md ./
COPY server ./server
COPY alembic ./alembic
COPY alembic.ini ./
COPY models/manifest.yaml ./models/manifest.yaml
COPY models/configs ./models/configs
COPY scripts ./scripts
RUN pip install --constraint constraints.txt -e '.[ml]'

VOLUME ["/models", "/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1

CMD ["studio", "serve", "--host", "0.0.0.0", "--port", "8000"]
