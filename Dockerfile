# One image for both processes: `pdp run` (sidecar) and `pdp control` (control plane).
# Multi-stage: the build stage has pip and a compiler-free wheel install; the final stage carries only
# the virtualenv, the built-in bundle source and a non-root user. Works with a read-only root
# filesystem: pdp writes only to --persist-dir (sidecar), --bundle-dir (control plane) and, for
# `run --dev`, .pdp/ in the working directory /var/lib/pdp; mount an emptyDir wherever it writes.

FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pdp ./pdp
RUN python -m venv /opt/pdp \
 && /opt/pdp/bin/pip install --no-cache-dir . \
 && /opt/pdp/bin/pdp --version

FROM python:3.11.11-slim-bookworm
# The working directory belongs to pdp whichever builder makes the image (the classic builder
# creates a WORKDIR as root), so `run --dev` can write its key and bundle there.
RUN groupadd --system --gid 10001 pdp \
 && useradd --system --uid 10001 --gid pdp --no-create-home --shell /usr/sbin/nologin pdp \
 && mkdir -p /var/lib/pdp \
 && chown 10001:10001 /var/lib/pdp
COPY --from=build /opt/pdp /opt/pdp
COPY bundles /opt/pdp/share/pdp/bundles
ENV PATH=/opt/pdp/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PDP_BUILTIN_BUNDLE=/opt/pdp/share/pdp/bundles/marketplace \
    PDP_HEALTH_URL=http://127.0.0.1:8181/health/live
USER 10001:10001
WORKDIR /var/lib/pdp
EXPOSE 8181 50051 8282 50052
# PDP_HEALTH_URL points at the sidecar by default; the control plane's pod sets it to :8282.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['PDP_HEALTH_URL'], timeout=2)"]
ENTRYPOINT ["pdp"]
CMD ["run", "--help"]
