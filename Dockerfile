# The omconnect worker image: `docker build -t omconnect .` then
# `docker run -v "$PWD/pipelines:/var/lib/omconnect/pipelines:ro" -p 127.0.0.1:8083:8083 \
#    -e OMCONNECT_API_TOKEN="$(cat api-token)" omconnect`.
# The API listens on every interface of the container, and requires its bearer token for
# everything but /health: from OMCONNECT_API_TOKEN, from the file OMCONNECT_API_TOKEN_FILE
# names (a mounted secret), or else one generated into $OMCONNECT_STATE/api-token (mode 0600).
# Publish the port on 127.0.0.1 unless clients elsewhere need it (docs/docker-compose.md).
FROM python:3.11-slim

# Broker, database and orchestrator extras to install; docker-compose.yml passes its own list.
ARG OMCONNECT_EXTRAS=kafka,nats,sql,s3,mqtt,rabbitmq,redis

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/omconnect
# Metadata first so the dependency layer is reused while only the code changes.
COPY pyproject.toml README.md ./
COPY omconnect ./omconnect
RUN pip install ".[${OMCONNECT_EXTRAS}]"

# A fixed non-root uid, so bind-mounted state directories can be chowned to it on the host.
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/omconnect omconnect \
    && mkdir -p /var/lib/omconnect/pipelines && chown omconnect /var/lib/omconnect/pipelines
USER omconnect
WORKDIR /var/lib/omconnect
ENV OMCONNECT_STATE=/var/lib/omconnect/state

EXPOSE 8083
# /health needs no token; with --tls-cert the check must use https:// (and trust the cert).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8083/health', timeout=3)"]

ENTRYPOINT ["omconnect"]
# 0.0.0.0 is the container's own interface: what reaches it is what `docker run -p` publishes.
CMD ["serve", "pipelines/", "--host", "0.0.0.0"]
