# The aegra server image, installed from this source tree: `docker build -t aegra:0.1.0 .`
# (compose.yaml here builds and tags it). A project (aegra.json, graphs/) lives in /app:
# compose.yaml mounts the example there, and the Dockerfile that `aegra init` writes into a
# new project builds FROM this image and copies the project in (docs/deploy.md).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid so a read-only bind mount of the project only needs to be world-readable.
RUN groupadd --system --gid 10001 aegra \
    && useradd --system --uid 10001 --gid aegra --create-home --home-dir /home/aegra aegra

WORKDIR /opt/aegra-src
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations
RUN pip install . && rm -rf /opt/aegra-src

WORKDIR /app
USER aegra
EXPOSE 2026

# Docker marks the container unhealthy after 3 failed checks; compose restarts it.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:2026/health', timeout=5)"]

# Exec form: SIGTERM reaches aegra directly, which drains before exiting.
CMD ["aegra", "serve"]
