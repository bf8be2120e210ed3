# fedssl: one image for every role of a federation (SuperLink, SuperNodes, the operator's CLI).
#
#   docker build -t fedssl .
#   docker run --rm fedssl deploy --help
#
# Every build step lives in deploy/docker/build-env.sh, which tests/test_docker_image.py also
# runs without Docker. The pins are deploy/docker/requirements.lock (linux/amd64 wheels, torch
# with its CUDA libraries). The image keeps the source tree at /opt/fedssl, installed
# editable: fedssl reads its run-config defaults from /opt/fedssl/pyproject.toml, and
# `fedssl deploy submit` hands /opt/fedssl to `flwr run` as the app directory.
#
# Base image: pinned to an exact tag here. In production pin the digest as well, in both
# stages, so a re-pushed tag cannot change the image:
#   docker buildx imagetools inspect python:3.11.7-slim-bookworm
# prints the image index's "Digest: sha256:..." (it covers every platform); then write
#   FROM python:3.11.7-slim-bookworm@sha256:<that digest> AS builder   (and AS runtime)

FROM python:3.11.7-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/fedssl
# The dependencies first (the heavy layer), so that editing fedssl/ does not reinstall torch.
COPY deploy/docker/build-env.sh deploy/docker/requirements.lock deploy/docker/
RUN bash deploy/docker/build-env.sh --deps-only /opt/venv /opt/fedssl
COPY pyproject.toml README.md ./
COPY fedssl/ fedssl/
RUN bash deploy/docker/build-env.sh /opt/venv /opt/fedssl

FROM python:3.11.7-slim-bookworm AS runtime
# A fixed uid/gid, so files on volumes (private keys are 0600) belong to the same user in
# every container. The volume mount points are created owned by it: a new named volume
# takes the ownership of the directory it is mounted on.
RUN groupadd --gid 10001 fedssl \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/fedssl \
        --shell /bin/bash fedssl \
    && mkdir -p /credentials /state /runs /data \
    && chown fedssl:fedssl /credentials /state /runs /data
# Same paths as in the builder: the venv's scripts and the editable install point there.
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/fedssl /opt/fedssl
ENV PATH=/opt/venv/bin:$PATH \
    FLWR_HOME=/home/fedssl/.flwr \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 \
    FLWR_TELEMETRY_ENABLED=0 \
    PYTHONUNBUFFERED=1
USER fedssl
WORKDIR /home/fedssl
# The SuperLink's one port: SuperNodes and the flwr CLI.
EXPOSE 9092
ENTRYPOINT ["fedssl"]
CMD ["--help"]
