# rootfs: installs the resolved .debs into a root tree with mmdebstrap (root mode, Docker's
# default capabilities, no network) and writes it as a deterministic tar.
# A thin layer on liveorch/base, which has the tools (Dockerfiles/base.packages).
ARG BASE=liveorch/base:latest
FROM ${BASE}
ENV PYTHONPATH=/opt/liveorch PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8
COPY stages/ /opt/liveorch/liveorch/stages/
ENTRYPOINT ["python3", "-m", "liveorch.stages", "rootfs"]
