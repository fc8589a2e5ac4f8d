"""The Secure Boot chain's stage-side pieces, on synthetic files: taking the signed binaries
out of a root (stages.signed_chain, the initrd stage), and the module list of a GRUB EFI
image and the EFI partition's layout (stages.grub_efi, the iso stage)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from liveorch.stages import grub_efi, signed_chain
from liveorch.stages.contracts.initrd import MOKMANAGER, SHIM, SIGNED_CHAIN, SIGNED_GRUB
from liveorch.stages.contracts.initrd import SPEC as INITRD_SPEC
from liveorch.stages.grub_config import early_config
from liveorch.stages.iso import EFI_MODULES
from liveorch.stages.tools import StageError


def _elf_module(name: str) -> bytes:
    """A relocatable ELF64 with just the sections GRUB names a module by."""
    names = b"\0.shstrtab\0.modname\0"
    modname = name.encode() + b"\0"
    data_offset = 64
    names_offset, modname_offset = data_offset, data_offset + len(names)
    section_offset = modname_offset + len(modname)
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    struct.pack_into("<Q", header, 0x28, section_offset)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 1)

    def section(name_index: int, offset: int, size: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name_index, 3, 0, 0, offset, size, 0, 0, 1, 0)

    sections = bytes(64) + section(1, names_offset, len(names)) + section(11, modname_offset, len(modname))
    return bytes(header) + names + modname + sections


def _grub_efi_image(modules: list[str]) -> bytes:
    """A PE file with a "mods" section as grub-mkimage lays it out: an info header, then
    (type, size) objects; a config object (type 2) among the modules."""
    objects = b""
    for index, name in enumerate(modules):
        elf = _elf_module(name)
        objects += struct.pack("<II", 0, 8 + len(elf)) + elf
        if index == 0:
            config = b"normal (memdisk)/grub.cfg\0\0\0"
            objects += struct.pack("<II", 2, 8 + len(config)) + config
    mods = struct.pack("<4s4xQQ", b"mimg", 24, 24 + len(objects)) + objects
    pe, table = 0x40, 0x40 + 24
    raw = table + 40
    image = bytearray(raw)
    image[:2] = b"MZ"
    struct.pack_into("<I", image, 0x3C, pe)
    image[pe:pe + 4] = b"PE\0\0"
    struct.pack_into("<HH", image, pe + 4, 0x8664, 1)  # machine, one section
    struct.pack_into("<H", image, pe + 20, 0)  # no optional header
    struct.pack_into("<8sIIII", image, table, b"mods", len(mods), 0x1000, len(mods), raw)
    return bytes(image) + mods


def test_builtin_modules_reads_every_module_and_skips_other_objects() -> None:
    image = _grub_efi_image(["normal", "serial", "terminal", "iso9660"])
    assert grub_efi.builtin_modules(image) == {"normal", "serial", "terminal", "iso9660"}


def test_an_image_without_modules_is_refused() -> None:
    image = _grub_efi_image(["normal"]).replace(b"mods\0\0\0\0", b"text\0\0\0\0", 1)
    with pytest.raises(StageError, match="no module section"):
        grub_efi.builtin_modules(image)


def test_esp_layout_starts_shim_which_starts_grub_beside_it() -> None:
    assert grub_efi.ESP_LAYOUT["EFI/BOOT/BOOTX64.EFI"] == SHIM == "efi/shim.efi"
    assert grub_efi.ESP_LAYOUT[grub_efi.ESP_GRUB] == SIGNED_GRUB == "efi/grub.efi"
    assert grub_efi.ESP_LAYOUT["EFI/BOOT/mmx64.efi"] == MOKMANAGER == "efi/mm.efi"
    assert grub_efi.ESP_GRUB == "EFI/BOOT/grubx64.efi"
    # the iso stage places exactly what the initrd stage collects
    assert set(grub_efi.ESP_LAYOUT.values()) == set(signed_chain.SIGNED_BINARIES)
    # what Debian's gcdx64.efi looks for; the menu's commands come as built-in modules
    assert (grub_efi.DISK_INFO, grub_efi.PLATFORM_CONFIG) == (".disk/info", "boot/grub/x86_64-efi/grub.cfg")
    assert {"serial", "terminal", "search_fs_file", "configfile", "linux"} <= set(EFI_MODULES)
    assert "search --no-floppy --set=root --file /boot/grub/m.id" in early_config("m.id")


def test_initrd_contract_declares_the_signed_chain_as_an_optional_tree() -> None:
    chain = INITRD_SPEC.output(SIGNED_CHAIN)
    assert chain.is_tree and chain.optional and chain.export is None
    assert INITRD_SPEC.undeclared([SHIM, MOKMANAGER, SIGNED_GRUB]) == []
    assert all(name.startswith(SIGNED_CHAIN) for name in signed_chain.SIGNED_BINARIES)
    assert INITRD_SPEC.missing(["vmlinuz", "initrd.img"]) == []  # secure_boot off: no efi/ at all


def _root(tmp_path: Path, skip: str = "") -> Path:
    root = tmp_path / "root"
    for path, package in signed_chain.SIGNED_BINARIES.values():
        if package != skip:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_bytes(f"signed {path}".encode())
    status = root / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text("Package: shim-signed\nStatus: install ok installed\nVersion: 1.51~1+deb12u1\n"
                      "Description: shim\n with a continuation: line\n\n"
                      "Package: grub-efi-amd64-signed\nVersion: 1+2.06+13+deb12u2\n\n"
                      "Package: shim-helpers-amd64-signed\nVersion: 1+16.1+2~deb12u1\n")
    return root


def test_collect_copies_the_signed_binaries_and_records_their_versions(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    versions = signed_chain.collect(_root(tmp_path), out)
    assert versions == {"grub-efi-amd64-signed (image)": "1+2.06+13+deb12u2",
                        "shim-helpers-amd64-signed (image)": "1+16.1+2~deb12u1",
                        "shim-signed (image)": "1.51~1+deb12u1"}
    assert (out / SHIM).read_bytes() == b"signed usr/lib/shim/shimx64.efi.signed"
    assert (out / MOKMANAGER).read_bytes() == b"signed usr/lib/shim/mmx64.efi.signed"
    assert (out / SIGNED_GRUB).read_bytes() == b"signed usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed"
    assert all((out / name).stat().st_mode & 0o777 == 0o644 for name in (SHIM, MOKMANAGER, SIGNED_GRUB))
    # only the declared outputs, under the initrd contract's efi/ tree
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == sorted([SHIM, MOKMANAGER, SIGNED_GRUB])
    assert INITRD_SPEC.undeclared(written) == []


def test_collect_names_the_missing_package(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(StageError, match=r'firmware="uefi" .* lacks grub-efi-amd64-signed \(removed by'):
        signed_chain.collect(_root(tmp_path, skip="grub-efi-amd64-signed"), out)
    assert not (out / SIGNED_CHAIN).exists()
