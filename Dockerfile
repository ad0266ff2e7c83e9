# hsmgate's container image: docs/deploy.md#container-image-and-compose-stack
#
#   podman build --format docker --network host -t hsmgate .          (docker build -t hsmgate .)
#
# Two stages on one Debian base: the build stage installs hsmgate and its wheels into a virtual
# environment, the runtime stage copies that environment beside Debian's python3 and SoftHSM2 and
# nothing else (no pip, no compiler). The runtime stage runs as the unprivileged user hsmgate (uid
# 10001) and writes only to /var/lib/hsmgate (state, master key, audit anchors), the SoftHSM2 token
# directory and /tmp, so it runs with a read-only root file system (compose.yaml: read_only: true).

# Any Debian bookworm image: the default from a registry, or one made with debootstrap
# (deploy/base-image.sh) where no registry is reachable.
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

FROM ${BASE_IMAGE} AS build
LABEL org.opencontainers.image.vendor="hsmgate"
# PIP_CERT: a CA bundle for pip when the package index is reached through an intercepting proxy
# (mounted at build time, e.g. `-v /etc/ssl/certs:/run/host-certs:ro`); empty: the system's.
ARG PIP_CERT=
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_CERT=${PIP_CERT}
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/hsmgate && /opt/hsmgate/bin/pip install --quiet --upgrade pip
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN /opt/hsmgate/bin/pip install --quiet /src \
 && /opt/hsmgate/bin/pip uninstall --quiet --yes pip

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.vendor="hsmgate"
ENV DEBIAN_FRONTEND=noninteractive
# softhsm2: the PKCS#11 module of the compose stack's token (/usr/lib/softhsm/libsofthsm2.so); a
# real HSM's vendor library is mounted instead and named by HSMGATE_PKCS11_MODULE.
# The user hsmgate is in the group softhsm, which Debian gives /etc/softhsm and /var/lib/softhsm.
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends python3 softhsm2 ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
RUN useradd --system --uid 10001 --user-group --groups softhsm --home-dir /var/lib/hsmgate --shell /usr/sbin/nologin hsmgate \
 && install -d -o hsmgate -g hsmgate -m 0700 /var/lib/hsmgate \
 && install -d -o hsmgate -g hsmgate -m 0700 /var/lib/softhsm/tokens
COPY --from=build /opt/hsmgate /opt/hsmgate
COPY deploy/softhsm2.conf /etc/softhsm/softhsm2.conf
COPY deploy/healthcheck.py /usr/local/bin/hsmgate-healthcheck
ENV PATH=/opt/hsmgate/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    SOFTHSM2_CONF=/etc/softhsm/softhsm2.conf \
    HSMGATE_HOST=0.0.0.0 HSMGATE_PORT=8080 HSMGATE_DATA_DIR=/var/lib/hsmgate
USER hsmgate
WORKDIR /var/lib/hsmgate
VOLUME ["/var/lib/hsmgate"]
EXPOSE 8080
# Needs `--format docker` with podman/buildah (the OCI image format has no health check).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["/usr/bin/python3", "/usr/local/bin/hsmgate-healthcheck"]
ENTRYPOINT ["hsmgate"]
CMD ["serve"]
