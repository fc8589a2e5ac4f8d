# iso: GRUB core images for BIOS and UEFI, the EFI FAT image (mtools, no mount) and the
# hybrid ISO (xorriso), and for verity_blocks the dm-verity hash tree (veritysetup format).
# Everything works on files, as an unprivileged user.
# A thin layer on liveorch/base, which has the tools (Dockerfiles/base.packages).
ARG BASE=liveorch/base:latest
FROM ${BASE}
ENV PYTHONPATH=/opt/liveorch PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8 TZ=UTC
COPY stages/ /opt/liveorch/liveorch/stages/
ENTRYPOINT ["python3", "-m", "liveorch.stages", "iso"]
