# squashfs: turns the root tar into the live root image without unpacking it, so no
# privileges are needed: owners come from the tar headers. trixie: its mke2fs (1.47.2) and
# mkfs.erofs (1.8) read a tar directly; mke2fs loads libarchive for that at run time. xfs:
# mkfs.xfs from a protofile, under libfaketime (a frozen clock and seeded getrandom).
FROM debian:trixie-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 squashfs-tools-ng e2fsprogs erofs-utils libarchive13t64 xfsprogs faketime \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONPATH=/opt/liveorch PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8
COPY stages/ /opt/liveorch/liveorch/stages/
ENTRYPOINT ["python3", "-m", "liveorch.stages", "squashfs"]
