# syntax=docker/dockerfile:1
# gatehouse image: the static binary on a slim Python base, so `app.wsgi`
# apps can run their workers in the same container.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/gatehouse ./cmd/gatehouse

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /srv --shell /usr/sbin/nologin gatehouse \
 && mkdir -p /srv/data/certs /srv/staticfiles /srv/media \
 && chown -R gatehouse:gatehouse /srv
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
COPY config.example.yaml /etc/gatehouse/gatehouse.yaml
COPY examples /srv/examples
WORKDIR /srv
USER gatehouse
ENV GATEHOUSE_CONFIG=/etc/gatehouse/gatehouse.yaml \
    GATEHOUSE_HOST=0.0.0.0
# 8080 plain HTTP, 8443 HTTPS, 9180 admin (keep it unpublished).
EXPOSE 8080 8443
VOLUME ["/srv/data", "/srv/staticfiles", "/srv/media"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9180/healthz', timeout=2)"]
# gatehouse reaps its workers and drains on SIGTERM, as `docker stop` sends.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gatehouse"]
CMD ["run"]
