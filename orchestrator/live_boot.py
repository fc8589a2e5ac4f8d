"""How the live system boots, decided once from the description: the kernel command line,
the boot menu and the dracut modules. The iso stage, the initrd stage and the network-boot
bundle all take these values as they are; none of them works them out again.
"""

from __future__ import annotations

from liveorch.orchestrator.description import LiveFlags, LiveType
from liveorch.stages.contracts.initrd import LIVEORCH_LIVE, LIVEORCH_VERITY
from liveorch.stages.contracts.iso import VERITY_DEVICE, BootMenu, MenuEntry, Terminal
from liveorch.stages.contracts.squashfs import RootFilesystem

SERIAL_CONSOLES = ("console=tty0", "console=ttyS0,115200")
FAILSAFE_ARGS = "nomodeset noapic acpi=off"
# verity_blocks: read the whole verity device before the root is mounted, and stop on damage.
VERITY_CHECK = "rd.liveorch.verity.check"
# --pxe: the initrd brings the network up and fetches the image. dracut's livenet for
# dmsquash; for overlay, url-lib (curl and its CA bundle) beside liveorch's module.
# network-legacy is named so dracut's network module does not pick systemd-networkd.
NETWORK_MODULES = {LiveFlags.DMSQUASH: ("livenet", "network-legacy"), LiveFlags.OVERLAY: ("url-lib", "network-legacy")}
# --pxe with flags="overlay": the aoe driver too, for KIWI's root=live:aoe:/dev/etherd/e<shelf>.<slot>
# (an ATA-over-Ethernet export holding the ISO or the root image, found by liveorch-live-aoe
# with the network modules' `ip`). dmsquash-live has no AoE path, so it gets no driver for one.
NETWORK_DRIVERS = {LiveFlags.DMSQUASH: (), LiveFlags.OVERLAY: ("aoe",)}
LIVE_MODULES = {LiveFlags.DMSQUASH: "dmsquash-live", LiveFlags.OVERLAY: LIVEORCH_LIVE}
LAYOUT_DRIVERS = {
    RootFilesystem.SQUASHFS: (),
    RootFilesystem.EXT4: ("ext4", "dm-snapshot"),
    RootFilesystem.XFS: ("xfs", "dm-snapshot"),
    RootFilesystem.EROFS: ("erofs",),
}


def medium_root(volid: str, live: LiveType) -> str:
    """root= for the ISO: its volume label, in udev's encoding (dracut decodes it), one word.
    With verity and dmsquash-live, the live medium dracut sees is the verity device that
    liveorch's verity module opens over the root image (it finds the ISO by its label)."""
    if live.layout.verity is not None and live.flags is LiveFlags.DMSQUASH:
        return f"root=live:/dev/mapper/{VERITY_DEVICE}"
    return "root=live:CDLABEL=" + volid.replace(" ", "\\x20")


# In the description's own kernelcmdline: parameters that work only with the network in the
# initrd (a network root, or the network brought up in the initrd), so the initrd gets it as
# with --pxe.
NETWORK_PARAMETERS = ("ip=", "rd.neednet=1", "root=live:http://", "root=live:https://", "root=live:ftp://",
                      "root=live:aoe:")


def network_parameter(live: LiveType) -> str | None:
    """The first word of the description's kernelcmdline that needs the network in the initrd."""
    return next((word for word in live.kernelcmdline.split() if word.startswith(NETWORK_PARAMETERS)), None)


def kernel_cmdline(live: LiveType, root: str, network: bool = False) -> str:
    """The live kernel command line: root, the overlay's parameters, the description's own
    kernelcmdline, and the serial console unless that names consoles itself."""
    words = [root]
    if live.flags is LiveFlags.OVERLAY:
        # liveorch's own live module (stages/dracut/90liveorch-live), KIWI's parameters.
        if live.hybridpersistent and not network:
            words += ["rd.live.overlay.persistent", f"rd.live.overlay.cowfs={live.hybridpersistent_filesystem}"]
    elif live.layout.filesystem.in_squashfs:
        # dmsquash-live finds LiveOS/rootfs.img in the squashfs: a device-mapper snapshot over it.
        words += ["rd.live.image"]
    else:
        # A flat squashfs or an EROFS image cannot take a block-level snapshot that stays
        # mountable read-write: dracut 059 overlays them with overlayfs, when told to.
        words += ["rd.live.image", "rd.live.overlay.overlayfs=1"]
    if network:
        words += ["ip=dhcp", "rd.neednet=1"]
    extra = live.kernelcmdline.split()
    words += extra
    if not any(word.startswith("console=") for word in extra):
        words += SERIAL_CONSOLES
    return " ".join(words)


def terminal(console: str) -> Terminal:
    """KIWI's console values: serial, console (the screen) or gfxterm; anything else both."""
    if console == "serial":
        return Terminal.SERIAL
    if console in ("console", "gfxterm"):
        return Terminal.SCREEN
    return Terminal.BOTH


def boot_menu(live: LiveType, volid: str, title: str) -> BootMenu:
    """The default entry, KIWI's "Check installation media" with media check, and failsafe."""
    cmdline = kernel_cmdline(live, medium_root(volid, live))
    entries = [MenuEntry(title, cmdline)]
    if live.mediacheck:
        entries.append(MenuEntry("Check installation media", f"{cmdline} {media_check(live)}"))
    entries.append(MenuEntry(f"{title} (failsafe)", f"{cmdline} {FAILSAFE_ARGS}"))
    return BootMenu(
        terminal=terminal(live.bootloader_console),
        timeout=live.bootloader_timeout,
        timeout_style=live.bootloader_timeout_style,
        entries=tuple(entries),
        loopback_cmdline=f"iso-scan/filename=${{iso_path}} {cmdline}",
    )


def media_check(live: LiveType) -> str:
    """The check entry's parameters. dmsquash-live's rd.live.check would run checkisomd5 on
    its live medium, which with verity is the verity device, not the ISO: verity's own full
    read checks the root there instead."""
    if live.flags is LiveFlags.OVERLAY:
        return "mediacheck=1" + (f" {VERITY_CHECK}" if live.layout.verity else "")
    return VERITY_CHECK if live.layout.verity else "rd.live.check"


def dracut_modules(live: LiveType, network: bool) -> tuple[str, ...]:
    verity = (LIVEORCH_VERITY,) if live.layout.verity else ()
    return (LIVE_MODULES[live.flags], *verity, *(NETWORK_MODULES[live.flags] if network else ()))


def layout_drivers(live: LiveType) -> tuple[str, ...]:
    """Kernel modules the root layout needs in dracut's dmsquash-live initrd; liveorch's own
    module installs every filesystem it mounts, so its initrd is the same for each layout."""
    return LAYOUT_DRIVERS[live.layout.filesystem] if live.flags is LiveFlags.DMSQUASH else ()


def initrd_drivers(live: LiveType, network: bool) -> tuple[str, ...]:
    """Kernel modules dracut adds beyond its modules' own: the root layout's, and with the
    network boot the AoE driver (an initrd without network could not reach an AoE target)."""
    return (*layout_drivers(live), *(NETWORK_DRIVERS[live.flags] if network else ()))
