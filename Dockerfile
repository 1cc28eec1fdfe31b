# syntax=docker/dockerfile:1
# gatehouse image: the static binary on a slim Python base, so that `app.wsgi`
# apps run their workers in the same container (no gunicorn).
#
#   docker build -t gatehouse .
#   docker run --rm -p 8080:8080 -p 8443:8443 gatehouse     # the examples/hello app
#
# Everything the container needs at run time is put in here: the binary, the
# configs in deploy/gatehouse.*.yaml (under /etc/gatehouse/), the example apps
# (under /srv/examples), and the Python packages named in PYTHON_PACKAGES.
# deploy/docker-compose.yml builds it with PYTHON_PACKAGES=Django for the
# Django example; your own image would `FROM` this one and pip install your
# requirements before switching back to USER gatehouse.

# --- build: the Go toolchain, only for compiling -------------------------------
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO off: a static binary that does not care about the final stage's libc.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/gatehouse ./cmd/gatehouse \
 && /out/gatehouse validate -c deploy/gatehouse.docker.yaml

# --- run: Python for app.wsgi, gatehouse, and a non-root user ------------------
FROM python:3.11-slim-bookworm
# Python packages the app needs (space separated pip requirements), installed
# as root before the switch to the unprivileged user.
ARG PYTHON_PACKAGES=""
RUN if [ -n "$PYTHON_PACKAGES" ]; then pip install --no-cache-dir $PYTHON_PACKAGES; fi
RUN useradd --system --uid 10001 --user-group --home-dir /srv --shell /usr/sbin/nologin gatehouse \
 && mkdir -p /srv/data/certs /srv/staticfiles /srv/media/media \
 && chown -R gatehouse:gatehouse /srv/data /srv/staticfiles /srv/media
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
COPY deploy/gatehouse.*.yaml /etc/gatehouse/
# The examples are read-only for the app; what they write goes to /srv/data.
COPY examples /srv/examples
WORKDIR /srv
ENV GATEHOUSE_CONFIG=/etc/gatehouse/gatehouse.docker.yaml \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER gatehouse
# 8080 plain HTTP (ACME http-01, redirects), 8443 HTTPS (HTTP/2). Publish
# them as 80 and 443 (`-p 80:8080 -p 443:8443`): a non-root user cannot bind
# below 1024 and does not need to. The admin listener (9180: /healthz,
# /readyz, /status, /metrics) is on the container's loopback by default;
# do not publish it, it has no authentication.
EXPOSE 8080 8443
# Certificates and ACME accounts (tls.storage: data/certs), collected static
# files, and uploads: keep them on volumes.
VOLUME ["/srv/data/certs", "/srv/staticfiles", "/srv/media"]
# /healthz answers 200 while gatehouse runs; Python's urllib is already here,
# so the check needs no curl. It asks 127.0.0.1:$ADMIN_PORT (default 9180),
# the admin.listen of every config in /etc/gatehouse: a config of your own
# must keep its admin listener there for the check to pass.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python3", "-c", "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ADMIN_PORT', '9180'), timeout=2).status == 200 else 1)"]
# gatehouse drains in-flight requests and stops its workers on SIGTERM, as
# `docker stop` sends; give it `stop_grace_period` above server.shutdown_timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gatehouse"]
CMD ["run"]
