"""The EFI side of the medium: where the signed chain goes on the EFI partition, and which
modules a GRUB EFI image has built in.

GRUB's signed image is gcdx64.efi, Debian's CD variant: its built-in config keeps the
prefix /boot/grub when that exists on the device GRUB was loaded from, else finds the
medium by /.disk/info, and then sources $prefix/x86_64-efi/grub.cfg, which liveorch makes
the marker search of the other boot paths. That file is also on the EFI partition: booted
from a stick, GRUB's prefix is the partition's /boot/grub, so no search for /.disk/info runs
that another Debian-style medium attached at the same time could win. A signed GRUB cannot
load modules under Secure Boot, so whatever the menu uses must be built into it:
`builtin_modules` reads the list from the image itself.
"""

from __future__ import annotations

import struct

from liveorch.stages.contracts.initrd import MOKMANAGER, SHIM, SIGNED_GRUB
from liveorch.stages.tools import StageError

# On the ESP: shim as the removable-media loader; it starts grubx64.efi beside it (and
# mmx64.efi, MokManager, when a key is to be enrolled). Path on the ESP -> initrd output.
ESP_GRUB = "EFI/BOOT/grubx64.efi"
ESP_LAYOUT = {"EFI/BOOT/BOOTX64.EFI": SHIM, ESP_GRUB: SIGNED_GRUB, "EFI/BOOT/mmx64.efi": MOKMANAGER}
# Where gcdx64.efi's built-in config looks: a file that marks the medium, and the config it sources.
DISK_INFO = ".disk/info"
PLATFORM_CONFIG = "boot/grub/x86_64-efi/grub.cfg"


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
