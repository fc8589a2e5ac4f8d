# squashfs: turns the root tar into the live root image without unpacking it, so no
# privileges are needed: owners come from the tar headers. mke2fs and mkfs.erofs read the
# tar directly; xfs: mkfs.xfs from a protofile, under libfaketime.
# A thin layer on liveorch/base-trixie, which has the tools (Dockerfiles/base-trixie.packages).
ARG BASE=liveorch/base-trixie:latest
FROM ${BASE}
ENV PYTHONPATH=/opt/liveorch PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8
COPY stages/ /opt/liveorch/liveorch/stages/
ENTRYPOINT ["python3", "-m", "liveorch.stages", "squashfs"]
