"""iso: the hybrid live ISO (El Torito BIOS + EFI, MBR and GPT), from the squashfs and initrd."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from liveorch.stages.contract import UNPRIVILEGED_UID, Output, StageSpec

ISO_IMAGE = "image.iso"
# KIWI's layout of the boot files on the medium.
KERNEL_PATH = "/boot/x86_64/loader/linux"
INITRD_PATH = "/boot/x86_64/loader/initrd"
# verity_blocks: a second initramfs, loaded after the first, holding VERITY_CONF (the root
# hash and how to open the image), and the hash tree beside the image it covers.
VERITY_INITRD_PATH = "/boot/x86_64/loader/verity"
VERITY_CONF = "etc/liveorch/verity.conf"
VERITY_SUFFIX = ".verity"
VERITY_DEVICE = "live-verity"  # /dev/mapper/live-verity
# netboot_loader: GRUB for UEFI clients booting from the network, beside the ISO (not on it);
# the bundle of `run --pxe` serves it as DHCP's boot file.
NETBOOT_LOADER = "bootx64.efi"


class Firmware(enum.StrEnum):
    """KIWI's firmware values: uefi is efi with the image's signed Secure Boot chain."""

    BIOS = "bios"
    EFI = "efi"
    UEFI = "uefi"

    @property
    def has_efi(self) -> bool:
        return self is not Firmware.BIOS


class Terminal(enum.StrEnum):
    """Where the GRUB menu shows: KIWI's console="serial", console="console|gfxterm", or both."""

    SERIAL = "serial"
    SCREEN = "console"
    BOTH = "serial console"


class TimeoutStyle(enum.StrEnum):
    MENU = "menu"
    COUNTDOWN = "countdown"
    HIDDEN = "hidden"


@dataclass(frozen=True)
class MenuEntry:
    """One GRUB menu entry: its title and the whole kernel command line."""

    title: str
    kernel_cmdline: str


@dataclass(frozen=True)
class BootMenu:
    """The menu, computed by the plan: the first entry boots by default. `loopback_cmdline`
    is for loopback.cfg, where another GRUB boots this ISO as a file (iso-scan)."""

    terminal: Terminal
    timeout: int
    timeout_style: TimeoutStyle
    entries: tuple[MenuEntry, ...]
    loopback_cmdline: str


@dataclass(frozen=True)
class Verity:
    """KIWI's verity_blocks: how many 4 KiB blocks from the start of the root image the
    dm-verity hash tree covers; None is "all" (blocks past the count are read unchecked)."""

    blocks: int | None

    def __str__(self) -> str:
        return "all" if self.blocks is None else str(self.blocks)


@dataclass(frozen=True)
class IsoOptions:
    """`netboot_loader` (--pxe): also make NETBOOT_LOADER, a GRUB EFI image that a UEFI PXE
    client loads by TFTP and that reads grub.cfg from the same server. It is not part of the
    medium: the ISO's bytes do not depend on it."""

    volid: str
    title: str
    application_id: str
    publisher: str
    firmware: Firmware
    efifatimagesize: int | None
    menu: BootMenu
    verity: Verity | None
    netboot_loader: bool


SPEC = StageSpec(
    name="iso",
    summary="grub-mkimage, mkfs.fat + mtools and xorriso, all on files as an unprivileged user",
    options=IsoOptions,
    inputs=("squashfs", "initrd"),
    outputs=(Output(ISO_IMAGE, export="{iso}"), Output(NETBOOT_LOADER, optional=True)),
    capabilities=(),
    user=UNPRIVILEGED_UID,
)
