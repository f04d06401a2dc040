# The chorus-health node image: `docker build -t chorus-health:0.1.0 .` (the tag is
# [project] name:version of pyproject.toml; ops/k8s/statefulset.yaml runs that image, and
# tests/ops/test_k8s.py checks that the two files agree).
#
# Two stages: py-libp2p's fastecdsa has no wheel and compiles against GMP, so the compiler
# and headers stay in the build stage; the image keeps the virtualenv and libgmp only.

FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libgmp-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/chorus
ENV PATH=/opt/chorus/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The packages of [tool.setuptools.packages.find] and what the build reads.
COPY pyproject.toml README.md LICENSE ./
COPY mesh ./mesh
COPY adapters ./adapters
COPY probes ./probes
COPY devnet ./devnet
RUN pip install . \
    && python -m compileall -q /opt/chorus


FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgmp10 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/chorus /opt/chorus

LABEL org.opencontainers.image.title="chorus-health" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="A libp2p-native peer health mesh for CHORUS" \
      org.opencontainers.image.licenses="MIT"

# `python` is the virtualenv's, with the package: the StatefulSet's init containers run
# `python -m adapters.authority_cli` and the discover-peers script with it.
# Bytecode was compiled above; the pod's root filesystem is read-only.
ENV PATH=/opt/chorus/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CHORUS_HEALTH_HOST=0.0.0.0 \
    CHORUS_DATA_DIR=/var/lib/chorus \
    CHORUS_DISK_PATH=/var/lib/chorus

# The node's own user, numeric so that Kubernetes' runAsNonRoot can verify it. The data
# directory holds the identity key (mode 0600): only this user may read it.
RUN groupadd --system --gid 10001 chorus \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/chorus --no-create-home \
       --shell /usr/sbin/nologin chorus \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/chorus
USER 10001:10001
WORKDIR /var/lib/chorus
VOLUME ["/var/lib/chorus"]

# health: /health, /health/ready, /health/live, /metrics, the dashboard; p2p: libp2p TCP.
EXPOSE 8081/tcp 9000/tcp

# Exec form: the node is PID 1 and gets SIGTERM itself, which starts its graceful shutdown.
# Arguments after the image name are the node's flags. Outside Kubernetes also set
# CHORUS_P2P_HOST and CHORUS_ADVERTISE_HOST to the container's address (the StatefulSet
# sets both to the pod IP): peers are told to dial those.
ENTRYPOINT ["chorus-health"]
