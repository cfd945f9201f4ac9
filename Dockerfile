# msnp6 server image: `docker compose up` (docker-compose.yml) runs it with PostgreSQL.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY msnp6 ./msnp6
COPY migrations ./migrations
COPY twisted ./twisted
# Build twistd's plugin cache now, as root: the server user cannot write into site-packages.
RUN pip install . \
    && python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))" \
    && cd / && rm -rf /src

# The data folder holds the credential key (and the SQLite file when no MSNP6_DB is set).
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/msnp6 --create-home msnp6
ENV MSNP6_HOME=/var/lib/msnp6 \
    MSNP6_KEY_FILE=/var/lib/msnp6/credential.key
VOLUME /var/lib/msnp6
WORKDIR /var/lib/msnp6
USER msnp6

# Dispatch, notification, switchboard, the web side (--web), admin HTTP (/healthz, /readyz,
# /metrics); the second node's and the other admin ports of the cluster profile
# (docker-compose.yml) after them.
EXPOSE 1863 1864 1865 8080 8180 1964 1965 8181 8182 8183

# --pidfile= : no pid file (a stale one in the volume would stop the next start).
CMD ["twistd", "-n", "--pidfile=", "msnp6"]
