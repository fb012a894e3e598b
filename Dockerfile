# syntax=docker/dockerfile:1
# The pgai vectorizer worker. Build: docker build -t pgai .   (extras: --build-arg PGAI_EXTRAS=litellm)
# Run:   docker run -e VECTORIZER_DB_URL=postgres://... -e OPENAI_API_KEY=... pgai
# Every option of `pgai vectorizer worker` has an environment variable (see the README), e.g.
# PGAI_VECTORIZER_WORKER_POLL_INTERVAL=30s, PGAI_VECTORIZER_WORKER_LOG_FORMAT=json.

# One pinned base for both stages: the virtualenv built in the first runs in the second.
# For byte-for-byte reproducible builds, add the digest: python:3.12.11-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.12.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG PGAI_EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/pgai
COPY pyproject.toml README.md ./
COPY pgai ./pgai
RUN if [ -n "$PGAI_EXTRAS" ]; then target=".[$PGAI_EXTRAS]"; else target="."; fi \
    && /opt/pgai/bin/pip install --no-cache-dir "$target" \
    && /opt/pgai/bin/pgai --version

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="pgai vectorizer worker" \
      org.opencontainers.image.description="Keeps vector embeddings of PostgreSQL data up to date" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed, numeric, unprivileged user: Kubernetes' runAsNonRoot can verify it.
RUN groupadd --system --gid 10001 pgai \
    && useradd --system --uid 10001 --gid pgai --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin pgai
COPY --from=build /opt/pgai /opt/pgai
ENV PATH=/opt/pgai/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PGAI_VECTORIZER_WORKER_HEALTH_PORT=8080
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080
# /healthz answers while the process is alive and its event loop responsive.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PGAI_VECTORIZER_WORKER_HEALTH_PORT', '8080') + '/healthz', timeout=4)"]
ENTRYPOINT ["pgai"]
CMD ["vectorizer", "worker"]
