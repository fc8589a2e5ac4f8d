# checksum: sha256 of the ISO, written in sha256sum format and read back to verify.
# A thin layer on liveorch/base, which has the tools (Dockerfiles/base.packages).
ARG BASE=liveorch/base:latest
FROM ${BASE}
ENV PYTHONPATH=/opt/liveorch PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8
COPY stages/ /opt/liveorch/liveorch/stages/
ENTRYPOINT ["python3", "-m", "liveorch.stages", "checksum"]
