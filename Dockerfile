# alert-router container image.
#
#   docker build -t alert-router .
#   docker run --rm --read-only --tmpfs /tmp -p 8080:8080 -v alert-router-data:/var/lib/alert-router alert-router
#
# Layout inside the image (mount over any of it to change it):
#   /etc/alert-router/alert-router.yaml   the config ($ALERT_ROUTER_CONFIG); `rules:`/`runbooks:` are relative to it
#   /etc/alert-router/rules/              routing rules (rules/*.yaml of the repository)
#   /etc/alert-router/runbooks/           remediation runbooks
#   /var/lib/alert-router/                the only writable path: SQLite store and file receivers ($ALERT_ROUTER_DATA_DIR)
# The process runs as UID/GID 10001 and writes nothing else, so the root filesystem can be read-only.
# Python dependencies come from requirements.lock (exact versions with hashes; `scripts/dev.sh lock` rewrites it).

# ---- build stage: a virtualenv with the locked dependencies and the alert-router wheel -----------------------
FROM python:3.11-slim-bookworm AS build

# The build backend named in pyproject.toml, pinned so the build is repeatable: the version requirements-dev.lock
# pins, which built the tested venv (tests/deploy/test_dockerfile.py keeps the two equal).
ARG SETUPTOOLS_VERSION=84.2.1

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when the lock changes.
COPY requirements.lock ./
# --require-hashes: only the files whose sha256 the lock lists, so a re-published or newer release never gets in.
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir --no-deps --require-hashes --only-binary=:all: -r requirements.lock \
    && pip install --no-cache-dir --no-deps "setuptools==${SETUPTOOLS_VERSION}"

COPY pyproject.toml README.md ./
COPY alert_router/ ./alert_router/
# --no-deps: everything the package needs is already installed from the lock; `pip check` proves the lock complete.
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && pip check \
    && alert-router --version

# ---- runtime stage ---------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

LABEL org.opencontainers.image.title="alert-router" \
      org.opencontainers.image.description="Alertmanager webhook receiver: durable routing, enrichment, chat delivery and guarded remediation" \
      org.opencontainers.image.licenses="Apache-2.0"

# PYTHONDONTWRITEBYTECODE: the root filesystem may be read-only (the venv's bytecode was compiled at install).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ALERT_ROUTER_CONFIG=/etc/alert-router/alert-router.yaml \
    ALERT_ROUTER_DATA_DIR=/var/lib/alert-router \
    ALERT_ROUTER_LISTEN=0.0.0.0:8080 \
    MPLCONFIGDIR=/opt/matplotlib

# A numeric, non-root user with no home and no shell; --no-log-init keeps a high UID from bloating lastlog.
RUN groupadd --system --gid 10001 alert-router \
    && useradd --system --no-log-init --uid 10001 --gid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin alert-router \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/alert-router

COPY --from=build /opt/venv /opt/venv
# matplotlib's font cache, built once here (read-only at run time), so pictures do not wait for it at startup.
RUN python -c "import matplotlib.font_manager" && test -d /opt/matplotlib
# Baked-in defaults, owned by root and read-only for the service user; Helm mounts ConfigMaps over them.
COPY alert-router.yaml /etc/alert-router/alert-router.yaml
COPY rules/ /etc/alert-router/rules/
COPY runbooks/ /etc/alert-router/runbooks/

USER 10001:10001
WORKDIR /var/lib/alert-router
VOLUME ["/var/lib/alert-router"]
EXPOSE 8080

# /healthz answers 200 while the event loop runs; urllib raises (exit 1) on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('ALERT_ROUTER_LISTEN', ':8080').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

# `docker run IMAGE` serves; `docker run IMAGE check` or `IMAGE route-test alertname=X` run the other subcommands.
ENTRYPOINT ["alert-router"]
CMD ["serve"]
