"""The Secure Boot chain of a firmware="uefi" ISO: the image's own signed shim and GRUB.

Debian ships the chain signed: shim (shim-signed) by Microsoft's third-party UEFI CA, which
PCs trust; MokManager (shim-helpers-amd64-signed), GRUB (grub-efi-amd64-signed) and the
kernel (linux-image-amd64) by Debian, whose CA shim embeds. The planner adds shim-signed
and grub-efi-amd64-signed to the image's packages, so their versions are resolved, locked
and recorded (packages list, SBOM) like any other. Installing them into the root is
harmless: their maintainer scripts act only on a machine booted with EFI (/sys/firmware/efi,
absent in the rootfs stage's chroot) and call grub-install only for an existing ESP.

The initrd stage, which unpacks the root anyway, copies the binaries out of it (`collect`);
the iso stage puts them on the EFI system partition under the removable-media names the
firmware looks for (`ESP_LAYOUT`). GRUB's image is gcdx64.efi, Debian's CD variant: its
built-in config keeps the prefix /boot/grub when that exists on the device GRUB was loaded
from, else finds the medium by /.disk/info, and then sources $prefix/x86_64-efi/grub.cfg,
which liveorch makes the marker search of the other boot paths. That file is also on the EFI
partition: booted from a stick, GRUB's prefix is the partition's /boot/grub, so no search
for /.disk/info runs that another Debian-style medium attached at the same time could win.
A signed GRUB cannot load modules under Secure Boot, so whatever the menu uses must be
built into it: `builtin_modules` reads the list from the image itself.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from liveorch.stages.tools import StageError

# Where the stage outputs of the chain go (in the initrd stage's output directory).
OUTPUT_DIR = "efi"
# role -> (file in the image's root, the package that installs it)
SIGNED_BINARIES = {
    "shim.efi": ("usr/lib/shim/shimx64.efi.signed", "shim-signed"),
    "mm.efi": ("usr/lib/shim/mmx64.efi.signed", "shim-helpers-amd64-signed"),
    "grub.efi": ("usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed", "grub-efi-amd64-signed"),
}
# On the ESP: shim as the removable-media loader; it starts grubx64.efi beside it (and
# mmx64.efi, MokManager, when a key is to be enrolled).
SIGNED_GRUB = "EFI/BOOT/grubx64.efi"
ESP_LAYOUT = {"EFI/BOOT/BOOTX64.EFI": "shim.efi", SIGNED_GRUB: "grub.efi", "EFI/BOOT/mmx64.efi": "mm.efi"}
# Where gcdx64.efi's built-in config looks: a file that marks the medium, and the config it sources.
DISK_INFO = ".disk/info"
PLATFORM_CONFIG = "boot/grub/x86_64-efi/grub.cfg"


def collect(root: Path, out: Path) -> dict[str, str]:
    """Copy the signed binaries out of the unpacked root; returns their packages' versions."""
    missing = sorted({package for path, package in SIGNED_BINARIES.values() if not (root / path).is_file()})
    if missing:
        raise StageError(f'firmware="uefi" needs the signed boot chain, but the image lacks {", ".join(missing)} '
                         "(removed by --delete-package, config.sh or images.sh?)")
    (out / OUTPUT_DIR).mkdir()
    for role, (path, _package) in SIGNED_BINARIES.items():
        shutil.copyfile(root / path, out / OUTPUT_DIR / role)
        (out / OUTPUT_DIR / role).chmod(0o644)
    return package_versions(root, sorted({package for _path, package in SIGNED_BINARIES.values()}))


def package_versions(root: Path, names: list[str]) -> dict[str, str]:
    """`<package> (image)`: version, from the root's dpkg status."""
    versions: dict[str, str] = {}
    for record in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in record.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Package") in names:
            versions[f"{fields['Package']} (image)"] = fields.get("Version", "unknown")
    return versions


def builtin_modules(efi_image: bytes) -> set[str]:
    """The modules grub-mkimage built into a GRUB EFI image (its PE section "mods").

    The section holds a grub_module_info64 header, then objects of (type, size); type 0
    is a module, an ELF object whose ".modname" section names it.
    """
    pe = struct.unpack_from("<I", efi_image, 0x3C)[0]
    sections, optional_size = struct.unpack_from("<H12xH", efi_image, pe + 6)
    table = pe + 24 + optional_size
    for index in range(sections):
        name, raw_offset = struct.unpack_from("<8s12xI", efi_image, table + 40 * index)
        if name.rstrip(b"\0") == b"mods":
            break
    else:
        raise StageError("the GRUB EFI image has no module section")
    magic, offset, size = struct.unpack_from("<4s4xQQ", efi_image, raw_offset)
    if magic != b"mimg":
        raise StageError("the GRUB EFI image's module section has no module info header")
    modules: set[str] = set()
    position, end = raw_offset + offset, raw_offset + size
    while position < end:
        kind, object_size = struct.unpack_from("<II", efi_image, position)
        if kind == 0:
            modules.add(_elf_module_name(efi_image[position + 8: position + object_size]))
        position += object_size
    return modules


def _elf_module_name(elf: bytes) -> str:
    section_offset = struct.unpack_from("<Q", elf, 0x28)[0]
    entry_size, count, names_index = struct.unpack_from("<HHH", elf, 0x3A)

    def header(index: int) -> tuple[int, int, int]:
        name, offset, size = struct.unpack_from("<I20xQQ", elf, section_offset + index * entry_size)
        return name, offset, size

    names_offset = header(names_index)[1]
    for index in range(count):
        name, offset, size = header(index)
        if elf[names_offset + name:].split(b"\0", 1)[0] == b".modname":
            return elf[offset: offset + size].split(b"\0", 1)[0].decode()
    raise StageError("a module in the GRUB EFI image has no name")
