# bnlab images. Two targets from one build:
#   api    - the HTTP API and the one-shot migration: no torch (`pip install .`)
#   worker - a Celery worker with the CUDA build of torch (`pip install .[worker]`)
# Both run as the unprivileged user `bnlab`.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib
RUN groupadd --system bnlab \
    && useradd --system --gid bnlab --create-home --home-dir /home/bnlab bnlab \
    && mkdir -p /data/datasets /data/gpu-slots \
    && chown -R bnlab:bnlab /data
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY core ./core
COPY api ./api
COPY worker ./worker
COPY migrations ./migrations

FROM base AS api
RUN pip install .
USER bnlab
EXPOSE 8000
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS worker
# The CUDA wheels of torch come from PyTorch's own index; everything else from PyPI.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
RUN pip install --index-url "${TORCH_INDEX_URL}" torch==2.13.0 \
    && pip install ".[worker]"
USER bnlab
CMD ["celery", "-A", "worker.app", "worker", "--pool=prefork", "--concurrency=1", "-Q", "default,gpu", "--loglevel=INFO"]
