# checksum: sha256 of the ISO, written in sha256sum format and read back to verify.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 isomd5sum \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONPATH=/opt/liveorch PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8
COPY stages/ /opt/liveorch/liveorch/stages/
ENTRYPOINT ["python3", "-m", "liveorch.stages", "checksum"]
