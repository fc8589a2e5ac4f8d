"""iso: the hybrid live ISO, bootable from CD and disk, with BIOS and UEFI.

Layout (KIWI's): LiveOS/squashfs.img, boot/x86_64/loader/{linux,initrd}, boot/grub/.
BIOS: a GRUB El Torito core image plus GRUB's hybrid MBR, which xorriso patches with the
core's address so the same image boots from a USB stick. UEFI: a FAT image holding
GRUB's BOOTX64.EFI, made with mkfs.fat and mtools (no mount), referenced as the El Torito
EFI image and as a GPT EFI system partition. Both core images embed a tiny config that
finds this medium by a marker file and loads the menu from it.

firmware="uefi" (Secure Boot): the FAT image holds the image's own signed shim, GRUB and
MokManager instead (stages/grub_efi.py), which the initrd stage took out of the root.
The signed GRUB has its own built-in config; the ISO gives it /.disk/info to find the
medium by and, in boot/grub/x86_64-efi/grub.cfg, the same marker search as above.

netboot_loader (--pxe): one more GRUB EFI image, not on the medium but an output of its own,
bootx64.efi, which the network-boot bundle serves to UEFI PXE clients.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from liveorch.stages import grub_efi, verity
from liveorch.stages.contract import RECORD_FILE, Outcome, StageRequest, Workspace, canonical_json, encode, sha256_text
from liveorch.stages.contracts.initrd import INITRD, KERNEL
from liveorch.stages.contracts.iso import (
    INITRD_PATH,
    ISO_IMAGE,
    KERNEL_PATH,
    NETBOOT_LOADER,
    VERITY_INITRD_PATH,
    VERITY_SUFFIX,
    Firmware,
    IsoOptions,
)
from liveorch.stages.contracts.squashfs import ROOT_IMAGE, SQUASHFS_IMAGE
from liveorch.stages.grub_config import early_config, loopback_config, menu_config, netboot_early_config
from liveorch.stages.tools import StageError, fresh_dir, log, package_version, run

GRUB_LIB = Path("/usr/lib/grub")
COMMON_MODULES = [
    "iso9660", "part_msdos", "part_gpt", "fat", "ext2", "search", "search_fs_file", "search_label",
    "configfile", "normal", "linux", "echo", "test", "serial", "terminal", "sleep", "loopback", "ls",
    "cat", "gzio", "xzio", "zstd", "halt", "reboot", "true",
]
BIOS_MODULES = ["biosdisk", *COMMON_MODULES]
EFI_MODULES = ["efi_gop", "efi_uga", *COMMON_MODULES]
# The network-boot loader reads its config, kernel and initrd by TFTP through the firmware's
# network interface (efinet); http lets a hand-edited grub.cfg use (http,HOST:PORT)/... instead.
NETBOOT_MODULES = [
    "efinet", "tftp", "http", "efi_gop", "efi_uga", "configfile", "normal", "linux", "echo", "test",
    "serial", "terminal", "sleep", "ls", "cat", "halt", "reboot", "true",
]


def _touch(path: Path, epoch: int) -> None:
    os.utime(path, (epoch, epoch), follow_symlinks=False)


def _grub_image(target: str, modules: list[str], output: Path, early: Path, prefix: str = "/boot/grub") -> None:
    run(["grub-mkimage", "--format", target, "--prefix", prefix, "--config", early,
         "--output", output, *modules], what=f"grub-mkimage {target}")


def _efi_fat_image(files: dict[str, Path], work: Path, output: Path, size_mib: int | None, serial: str,
                   epoch: int) -> None:
    """FAT image with these files (path in the image: source); fixed serial and dates make it repeatable."""
    tree = work / "efitree"
    for name, source in sorted(files.items()):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(source.read_bytes())
    for path in tree.rglob("*"):
        _touch(path, epoch)
    needed_kib = sum(source.stat().st_size // 1024 + 64 for source in files.values()) + 512
    kib = max(needed_kib, (size_mib or 0) * 1024, 2048)
    run(["mkfs.fat", "-C", "--invariant", "-i", serial, "-n", "EFIBOOT", output, str(kib)], what="mkfs.fat")
    run(["mcopy", "-s", "-m", "-i", output, *sorted(tree.iterdir()), "::/"], what="mcopy")


def _signed_chain(initrd: Path, tree: Path, early: Path, title: str) -> dict[str, Path]:
    """The FAT image's files for Secure Boot, and what the signed GRUB looks for on the ISO.

    Its config (the marker search) goes on both: from a stick GRUB's prefix is the EFI
    partition's /boot/grub, so it finds this very medium without searching for /.disk/info.
    """
    files = {path: initrd / output for path, output in grub_efi.ESP_LAYOUT.items()}
    if not all(source.is_file() for source in files.values()):
        raise StageError('firmware="uefi": the initrd stage delivered no signed shim/GRUB '
                         "(its option secure_boot was not set)")
    grub = files[grub_efi.ESP_GRUB]
    missing = sorted(set(EFI_MODULES) - grub_efi.builtin_modules(grub.read_bytes()))
    if missing:
        raise StageError(f"the signed GRUB lacks the modules {', '.join(missing)}, which the menu needs; "
                         "under Secure Boot it cannot load them")
    (tree / grub_efi.DISK_INFO).parent.mkdir(parents=True)
    (tree / grub_efi.DISK_INFO).write_text(title + "\n")
    (tree / grub_efi.PLATFORM_CONFIG).parent.mkdir(parents=True)
    (tree / grub_efi.PLATFORM_CONFIG).write_bytes(early.read_bytes())
    return {**files, grub_efi.PLATFORM_CONFIG: early}


def xorriso_argv(options: IsoOptions, epoch: int, tree: Path, grafts: dict[str, Path], output: Path
                 ) -> list[str | Path]:
    date = datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d%H%M%S00")
    identity: list[str | Path] = [
        "-volid", options.volid,
        "-appid", options.application_id,
        "-publisher", options.publisher,
        "-preparer", "liveorch",
        "-sysid", "LINUX",
    ]
    reproducible: list[str | Path] = [
        f"--modification-date={date}",
        "--set_all_file_dates", f"={epoch}",
    ]
    bios: list[str | Path] = [
        "--grub2-mbr", GRUB_LIB / "i386-pc/boot_hybrid.img",
        "-b", "boot/grub/i386-pc/eltorito.img",
        "-no-emul-boot",
        "-boot-load-size", "4",
        "-boot-info-table",
        "--grub2-boot-info",
    ]
    uefi: list[str | Path] = [
        "-eltorito-alt-boot",
        "--efi-boot", "boot/grub/efi.img",
        "-efi-boot-part", "--efi-boot-image",
        "--protective-msdos-label",
    ] if options.firmware.has_efi else []
    return [
        "xorriso", "-as", "mkisofs",
        "-iso-level", "3",
        "-full-iso9660-filenames",
        "-joliet", "-joliet-long",
        "-rational-rock",
        *identity,
        *reproducible,
        *bios,
        *uefi,
        "-output", output,
        "-graft-points",
        f"/={tree}",
        *[f"{iso_path}={host}" for iso_path, host in sorted(grafts.items())],
    ]


def medium_identity(request: StageRequest, workspace: Workspace) -> str:
    """A hash of what the ISO is made of, for its marker file and FAT serial.

    Not the cache key: that covers the stage's code too, and two checkouts that differ only
    in a comment must still make the same ISO.
    """
    inputs = {name: json.loads((workspace.input(request, name) / RECORD_FILE).read_text())["outputs"]
              for name in sorted(request.inputs)}
    return sha256_text(canonical_json({"options": _medium_options(request.options),
                                       "epoch": request.source_date_epoch, "inputs": inputs}))


def _medium_options(options: IsoOptions) -> dict[str, object]:
    """The options that shape the medium. netboot_loader does not (the loader is written
    beside the ISO), so a --pxe build's ISO is byte for byte the ISO built without it."""
    encoded: dict[str, object] = encode(options)
    del encoded["netboot_loader"]
    return encoded


def _esp_files(options: IsoOptions, initrd: Path, tree: Path, work: Path, early: Path) -> dict[str, Path]:
    """What goes on the EFI partition: the image's signed chain, or a GRUB made here."""
    if options.firmware is Firmware.UEFI:
        return _signed_chain(initrd, tree, early, options.title)
    if options.firmware is Firmware.EFI:
        loader = work / "BOOTX64.EFI"
        _grub_image("x86_64-efi", EFI_MODULES, loader, early)
        return {"EFI/BOOT/BOOTX64.EFI": loader}
    return {}


def _verity_files(options: IsoOptions, live: Path, work: Path, identity: str, epoch: int) -> dict[str, Path]:
    """verity_blocks: the hash tree of the image on the medium (the EROFS rootfs.img, or
    squashfs.img, which holds the ext4 rootfs.img in that layout) and the initramfs with
    its root hash. Nothing without verity_blocks."""
    if options.verity is None:
        return {}
    image = ROOT_IMAGE if (live / ROOT_IMAGE).is_file() else SQUASHFS_IMAGE
    tree_file = work / (Path(image).name + VERITY_SUFFIX)
    tree = verity.make_hash_tree(live / image, tree_file, options.verity, identity)
    initramfs = work / "verity.cpio"
    initramfs.write_bytes(verity.verity_initramfs(Path(image).name, options.volid, tree, epoch))
    return {f"/{image}{VERITY_SUFFIX}": tree_file, VERITY_INITRD_PATH: initramfs}


def _netboot_loader(options: IsoOptions, work: Path, out: Path) -> None:
    """netboot_loader: GRUB for UEFI network clients, as an output of its own. Its prefix is
    left empty so that GRUB takes the TFTP server and folder it was loaded from; the embedded
    config then reads grub.cfg there."""
    if not options.netboot_loader:
        return
    early = work / "netboot.cfg"
    early.write_text(netboot_early_config())
    _grub_image("x86_64-efi", NETBOOT_MODULES, out / NETBOOT_LOADER, early, prefix="")


def execute(request: StageRequest, workspace: Workspace) -> Outcome:
    options: IsoOptions = request.options
    epoch = request.source_date_epoch
    tree, work = fresh_dir(workspace.tmp / "iso"), fresh_dir(workspace.tmp / "grub")
    identity = medium_identity(request, workspace)
    marker = f"liveorch-{identity[:16]}.id"
    grub_dir = tree / "boot/grub"
    (grub_dir / "i386-pc").mkdir(parents=True)
    (grub_dir / marker).write_text(options.volid + "\n")
    initrds = (INITRD_PATH, VERITY_INITRD_PATH) if options.verity else (INITRD_PATH,)
    (grub_dir / "grub.cfg").write_text(menu_config(options.menu, initrds))
    (grub_dir / "loopback.cfg").write_text(loopback_config(options.menu, initrds))
    early = work / "early.cfg"
    early.write_text(early_config(marker))
    _grub_image("i386-pc-eltorito", BIOS_MODULES, grub_dir / "i386-pc/eltorito.img", early)
    initrd = workspace.input(request, "initrd")
    esp = _esp_files(options, initrd, tree, work, early)
    efi_image = grub_dir / "efi.img"
    if esp:
        _efi_fat_image(esp, work, efi_image, options.efifatimagesize, identity[:8].upper(), epoch)
        log(f"EFI partition: {', '.join(sorted(esp))}")
    live = workspace.input(request, "squashfs")
    grafts = {f"/{name}": live / name for name in (SQUASHFS_IMAGE, ROOT_IMAGE) if (live / name).is_file()}
    grafts |= {KERNEL_PATH: initrd / KERNEL, INITRD_PATH: initrd / INITRD}
    grafts |= _verity_files(options, live, work, identity, epoch)
    iso = workspace.out / ISO_IMAGE
    run(xorriso_argv(options, epoch, tree, grafts, iso), what="xorriso")
    log(f"iso: {iso.stat().st_size // (1 << 20)} MiB")
    _netboot_loader(options, work, workspace.out)
    return Outcome(
        tools=package_version("xorriso", "grub-common", "grub-pc-bin", "grub-efi-amd64-bin", "mtools", "dosfstools",
                              *(("cryptsetup-bin",) if options.verity else ())),
        # efi_image_size: the EFI partition's share of the ISO, for report.html.
        facts={"marker": marker, "secure_boot": options.firmware is Firmware.UEFI, "efi_partition": sorted(esp),
               "efi_image_size": efi_image.stat().st_size if esp else 0},
    )
