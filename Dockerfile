# Vechnost bot image. Debian's redis-server is installed so that auto-start works
# inside the container (REDIS_AUTO_START=true); the data dir /data is a volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# redis-server for auto-start; nothing starts it at build time (no init system here).
RUN apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 vechnost \
    && useradd --system --uid 10001 --gid vechnost --home-dir /app --shell /usr/sbin/nologin vechnost \
    && mkdir -p /data \
    && chown vechnost:vechnost /data \
    && chmod 0700 /data

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so this layer is cached until they change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md ./
COPY src ./src
RUN pip install --no-deps .

ENV REDIS_DATA_DIR=/data \
    REDIS_SERVER_BIN=/usr/bin/redis-server \
    REDIS_AUTO_START=true \
    LOG_FILE=/data/vechnost.log \
    HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8080

VOLUME ["/data"]
EXPOSE 8080
USER vechnost

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]

CMD ["vechnost", "run"]
