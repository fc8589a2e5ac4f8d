"""iso: the hybrid live ISO, bootable from CD and disk, with BIOS and UEFI.

Layout (KIWI's): LiveOS/squashfs.img, boot/x86_64/loader/{linux,initrd}, boot/grub/.
BIOS: a GRUB El Torito core image plus GRUB's hybrid MBR, which xorriso patches with the
core's address so the same image boots from a USB stick. UEFI: a FAT image holding
GRUB's BOOTX64.EFI, made with mkfs.fat and mtools (no mount), referenced as the El Torito
EFI image and as a GPT EFI system partition. Both core images embed a tiny config that
finds this medium by a marker file and loads the menu from it.

firmware="uefi" (Secure Boot): the FAT image holds the image's own signed shim, GRUB and
MokManager instead (stages/secure_boot.py), which the initrd stage took out of the root.
The signed GRUB has its own built-in config; the ISO gives it /.disk/info to find the
medium by and, in boot/grub/x86_64-efi/grub.cfg, the same marker search as above.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from liveorch.stages import secure_boot
from liveorch.stages.contract import RESULT_FILE, StageRequest, canonical_json, sha256_text
from liveorch.stages.grub_config import INITRD_PATH, KERNEL_PATH, early_config, loopback_config, menu_config
from liveorch.stages.tools import Outcome, StageError, log, package_version, run

TREE = Path("/tmp/iso")
WORK = Path("/tmp/grub")
GRUB_LIB = Path("/usr/lib/grub")
COMMON_MODULES = [
    "iso9660", "part_msdos", "part_gpt", "fat", "ext2", "search", "search_fs_file", "search_label",
    "configfile", "normal", "linux", "echo", "test", "serial", "terminal", "sleep", "loopback", "ls",
    "cat", "gzio", "xzio", "zstd", "halt", "reboot", "true",
]
BIOS_MODULES = ["biosdisk", *COMMON_MODULES]
EFI_MODULES = ["efi_gop", "efi_uga", *COMMON_MODULES]


def _touch(path: Path, epoch: int) -> None:
    os.utime(path, (epoch, epoch), follow_symlinks=False)


def _grub_image(target: str, modules: list[str], output: Path, early: Path) -> None:
    run(["grub-mkimage", "--format", target, "--prefix", "/boot/grub", "--config", early,
         "--output", output, *modules], what=f"grub-mkimage {target}")


def _efi_fat_image(files: dict[str, Path], output: Path, size_mib: int | None, serial: str, epoch: int) -> None:
    """FAT image with these files (path in the image: source); fixed serial and dates make it repeatable."""
    tree = WORK / "efitree"
    for name, source in sorted(files.items()):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(source.read_bytes())
    for path in tree.rglob("*"):
        _touch(path, epoch)
    needed_kib = sum(source.stat().st_size // 1024 + 64 for source in files.values()) + 512
    kib = max(needed_kib, (size_mib or 0) * 1024, 2048)
    run(["mkfs.fat", "-C", "--invariant", "-i", serial, "-n", "EFIBOOT", output, str(kib)], what="mkfs.fat")
    run(["mcopy", "-s", "-m", "-i", output, *sorted(tree.iterdir()), "::/"], what="mcopy")


def _signed_chain(initrd: Path, early: Path, title: str) -> dict[str, Path]:
    """The FAT image's files for Secure Boot, and what the signed GRUB looks for on the ISO.

    Its config (the marker search) goes on both: from a stick GRUB's prefix is the EFI
    partition's /boot/grub, so it finds this very medium without searching for /.disk/info.
    """
    chain = initrd / secure_boot.OUTPUT_DIR
    files = {path: chain / role for path, role in secure_boot.ESP_LAYOUT.items()}
    if not all(source.is_file() for source in files.values()):
        raise StageError('firmware="uefi": the initrd stage delivered no signed shim/GRUB '
                         "(its option secure_boot was not set)")
    grub = files[secure_boot.SIGNED_GRUB]
    missing = sorted(set(EFI_MODULES) - secure_boot.builtin_modules(grub.read_bytes()))
    if missing:
        raise StageError(f"the signed GRUB lacks the modules {', '.join(missing)}, which the menu needs; "
                         "under Secure Boot it cannot load them")
    (TREE / secure_boot.DISK_INFO).parent.mkdir(parents=True)
    (TREE / secure_boot.DISK_INFO).write_text(title + "\n")
    (TREE / secure_boot.PLATFORM_CONFIG).parent.mkdir(parents=True)
    (TREE / secure_boot.PLATFORM_CONFIG).write_bytes(early.read_bytes())
    return {**files, secure_boot.PLATFORM_CONFIG: early}


def _volume_checks(volid: str) -> None:
    if not volid or len(volid) > 32:
        raise StageError(f"volid {volid!r} must be 1 to 32 characters")


def _xorriso_args(options: dict, epoch: int, efi: bool, grafts: dict[str, Path], output: Path) -> list[str | Path]:
    date = datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d%H%M%S00")
    identity: list[str | Path] = [
        "-volid", options["volid"],
        "-appid", options.get("application_id") or options["volid"],
        "-publisher", options.get("publisher") or "liveorch",
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
    ] if efi else []
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
        f"/={TREE}",
        *[f"{iso_path}={host}" for iso_path, host in sorted(grafts.items())],
    ]


def medium_identity(request: StageRequest) -> str:
    """A hash of what the ISO is made of, for its marker file and FAT serial.

    Not the cache key: that includes the stage image's id, which differs between hosts
    that built the same Dockerfile, and the ISO must not.
    """
    inputs = {name: json.loads((Path(path) / RESULT_FILE).read_text())["outputs"]
              for name, path in sorted(request.inputs.items())}
    return sha256_text(canonical_json({"options": request.options, "epoch": request.source_date_epoch,
                                       "inputs": inputs}))


def execute(request: StageRequest, out: Path) -> Outcome:
    options = request.options
    epoch = request.source_date_epoch
    _volume_checks(options["volid"])
    firmware = options.get("firmware", "efi")
    efi = firmware in ("efi", "uefi")
    identity = medium_identity(request)
    marker = f"liveorch-{identity[:16]}.id"
    grub_dir = TREE / "boot/grub"
    (grub_dir / "i386-pc").mkdir(parents=True)
    WORK.mkdir(parents=True)
    (grub_dir / marker).write_text(options["volid"] + "\n")
    (grub_dir / "grub.cfg").write_text(menu_config(options))
    (grub_dir / "loopback.cfg").write_text(loopback_config(options))
    early = WORK / "early.cfg"
    early.write_text(early_config(marker))
    _grub_image("i386-pc-eltorito", BIOS_MODULES, grub_dir / "i386-pc/eltorito.img", early)
    initrd = Path(request.inputs["initrd"])
    esp: dict[str, Path] = {}  # the FAT image's files
    if firmware == "uefi":
        esp = _signed_chain(initrd, early, options.get("title") or options["volid"])
    elif efi:
        esp = {"EFI/BOOT/BOOTX64.EFI": WORK / "BOOTX64.EFI"}
        _grub_image("x86_64-efi", EFI_MODULES, esp["EFI/BOOT/BOOTX64.EFI"], early)
    if esp:
        serial = identity[:8].upper()
        _efi_fat_image(esp, grub_dir / "efi.img", options.get("efifatimagesize"), serial, epoch)
        log(f"EFI partition: {', '.join(sorted(esp))}")
    squashfs = Path(request.inputs["squashfs"]) / "LiveOS/squashfs.img"
    grafts = {
        "/LiveOS/squashfs.img": squashfs,
        KERNEL_PATH: initrd / "vmlinuz",
        INITRD_PATH: initrd / "initrd.img",
    }
    iso = out / options["iso_name"]
    run(_xorriso_args(options, epoch, efi, grafts, iso), what="xorriso")
    log(f"iso: {iso.name}, {iso.stat().st_size // (1 << 20)} MiB")
    return Outcome(
        tools=package_version("xorriso", "grub-common", "grub-pc-bin", "grub-efi-amd64-bin", "mtools", "dosfstools"),
        facts={"iso_name": iso.name, "marker": marker, "secure_boot": firmware == "uefi",
               "efi_partition": sorted(esp)},
    )
