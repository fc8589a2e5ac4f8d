# squashfs: turns the root tar into LiveOS/squashfs.img without unpacking it, so no
# privileges are needed: owners come from the tar headers.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 squashfs-tools-ng \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONPATH=/opt/liveorch PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8
COPY stages/ /opt/liveorch/liveorch/stages/
ENTRYPOINT ["python3", "-m", "liveorch.stages", "squashfs"]
