"""initrd: the image's kernel and a dracut initramfs that finds and mounts the live root."""

from __future__ import annotations

from dataclasses import dataclass

from liveorch.stages.contract import Output, StageSpec

KERNEL = "vmlinuz"
INITRD = "initrd.img"
# firmware="uefi": the image's signed boot chain, copied out of the root for the iso stage.
SIGNED_CHAIN = "efi/"
SHIM = "efi/shim.efi"
MOKMANAGER = "efi/mm.efi"
SIGNED_GRUB = "efi/grub.efi"
# liveorch's own dracut modules, shipped in the stage image: module name -> folder.
LIVEORCH_LIVE = "liveorch-live"
LIVEORCH_VERITY = "liveorch-verity"  # verity_blocks: opens the root image through dm-verity
OWN_MODULE_DIRS = {LIVEORCH_LIVE: "dracut/90liveorch-live", LIVEORCH_VERITY: "dracut/90liveorch-verity"}


@dataclass(frozen=True)
class InitrdOptions:
    """`dracut_modules`: every module to add (the plan's choice from flags and --pxe);
    `drivers`: kernel modules the root layout needs (erofs; ext4 and dm-snapshot) and, with
    --pxe and flags="overlay", the AoE driver (aoe);
    `secure_boot`: also hand on the image's signed shim, MokManager and GRUB."""

    dracut_modules: tuple[str, ...]
    drivers: tuple[str, ...]
    secure_boot: bool


SPEC = StageSpec(
    name="initrd",
    summary="the image's own dracut, run in the unpacked root through chroot",
    options=InitrdOptions,
    inputs=("rootfs",),
    outputs=(Output(KERNEL), Output(INITRD), Output(SIGNED_CHAIN, optional=True)),
    # unpacking the root with its owners, then chroot to run the image's dracut.
    capabilities=("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SYS_CHROOT", "MKNOD", "SETFCAP"),
    user=0,
    data=tuple(OWN_MODULE_DIRS.values()),
)
