# syntax=docker/dockerfile:1
# One image for both bot processes: `ferry telegram` (the default) or `ferry signal`.

# --- build: install the locked dependencies and Ferry into a virtual environment ---------------
FROM python:3.12-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/ferry
COPY requirements.lock ./
RUN /opt/ferry/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY core ./core
COPY bots ./bots
COPY config ./config
RUN /opt/ferry/bin/pip install --no-deps .

# --- run: slim, non-root, read-only root filesystem friendly -----------------------------------
FROM python:3.12-slim-bookworm
ENV PATH=/opt/ferry/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FERRY_DATA_DIR=/data \
    FERRY_HEALTH_PORT=8080 \
    FERRY_HEALTH_HOST=0.0.0.0
RUN groupadd --system --gid 10001 ferry \
    && useradd --system --uid 10001 --gid ferry --home-dir /data --shell /usr/sbin/nologin ferry \
    && mkdir -p /data && chown ferry:ferry /data
COPY --from=build /opt/ferry /opt/ferry
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('FERRY_HEALTH_PORT', '8080'), timeout=4).status == 200 else 1)"]
ENTRYPOINT ["ferry"]
CMD ["telegram"]
