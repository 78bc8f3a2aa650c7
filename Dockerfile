# Vechnost bot image. Debian's redis-server is installed so that auto-start works inside
# the container (REDIS_AUTO_START=true); the data dir /data is a volume.
#
# The base is pinned by tag and digest (Debian 12 "bookworm", Python 3.11): the bare
# python:3.11-slim tag moved to Debian 13. Renew the digest with
#   docker buildx imagetools inspect python:3.11-slim-bookworm
# or build on another base with --build-arg PYTHON_IMAGE=... (the tests do, offline).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# redis-server for auto-start; tini as PID 1 reaps what the bot's children leave behind
# (a daemonized redis-server is re-parented to PID 1) and forwards signals.
# DL3008 (pin apt versions): bookworm's security updates replace a version in the archive,
# so a pinned version stops installing within weeks; the base digest pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 vechnost \
    && useradd --system --uid 10001 --gid vechnost --home-dir /app --shell /usr/sbin/nologin vechnost \
    && mkdir -p /data \
    && chown vechnost:vechnost /data \
    && chmod 0700 /data

WORKDIR /app

# Dependencies first, exact versions and hashes from requirements.lock (regenerate it with
# pip-compile, see docs/operations.md), so this layer is cached until they change.
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps . \
    && rm -rf build src/*.egg-info
COPY deploy/docker-entrypoint.sh deploy/healthcheck.py /usr/local/bin/

ENV REDIS_DATA_DIR=/data \
    REDIS_SERVER_BIN=/usr/bin/redis-server \
    REDIS_AUTO_START=true \
    LOG_FILE=/data/vechnost.log \
    HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8080

VOLUME ["/data"]
EXPOSE 8080
# Numeric, so that Kubernetes' runAsNonRoot can verify it without the image's passwd.
USER 10001:10001

# Follows HEALTH_PORT / HEALTH_HOST as the bot does.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/usr/local/bin/healthcheck.py"]

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["vechnost", "run"]
