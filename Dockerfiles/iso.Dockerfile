# iso: GRUB core images for BIOS and UEFI, the EFI FAT image (mtools, no mount) and the
# hybrid ISO (xorriso), and for verity_blocks the dm-verity hash tree (veritysetup format).
# Everything works on files, as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 xorriso grub-common grub-pc-bin grub-efi-amd64-bin mtools dosfstools cryptsetup-bin \
 && rm -rf /var/lib/apt/lists/*
ENV PYTHONPATH=/opt/liveorch PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8 TZ=UTC
COPY stages/ /opt/liveorch/liveorch/stages/
ENTRYPOINT ["python3", "-m", "liveorch.stages", "iso"]
