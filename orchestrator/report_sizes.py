"""Where an ISO's bytes go, from report.json: the files the stages made, each with its
share of the ISO, and the rest (GRUB, menus, ISO 9660 and partition tables).

The sizes are the stage records' own (what the store holds), so the split needs no access
to the ISO. The EFI partition's size is the iso stage's fact; a report from before it was
recorded counts the signed boot chain the initrd stage delivered for it, which leaves out
the FAT's own overhead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from liveorch.stages.contracts.initrd import INITRD, KERNEL, SIGNED_CHAIN
from liveorch.stages.contracts.rootfs import ROOT_TAR
from liveorch.stages.contracts.squashfs import ROOT_IMAGE, SQUASHFS_IMAGE


@dataclass(frozen=True)
class Part:
    label: str
    detail: str
    size: int


def _stage(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next((s for s in record.get("stages", []) if s.get("stage") == name), {})


def _output_size(stage: dict[str, Any], output: str) -> int:
    item = stage.get("outputs", {}).get(output)
    return int(item["size"]) if isinstance(item, dict) and isinstance(item.get("size"), int) else 0


def _efi(record: dict[str, Any]) -> Part | None:
    facts = _stage(record, "iso").get("facts") or {}
    if isinstance(facts.get("efi_image_size"), int):
        size = facts["efi_image_size"]
        return Part("EFI partition", "boot/grub/efi.img: " + ", ".join(facts.get("efi_partition", [])), size) \
            if size else None
    chain = {name: item for name, item in _stage(record, "initrd").get("outputs", {}).items()
             if name.startswith(SIGNED_CHAIN)}
    if not chain:
        return None
    return Part("EFI partition", "signed shim, GRUB and MokManager (without the FAT's overhead)",
                sum(int(item["size"]) for item in chain.values()))


def iso_split(record: dict[str, Any]) -> list[Part]:
    """The ISO's parts, largest first, then what the parts leave of the ISO's size."""
    squashfs, initrd = _stage(record, "squashfs"), _stage(record, "initrd")
    parts = [Part("root filesystem", name, _output_size(squashfs, name)) for name in (SQUASHFS_IMAGE, ROOT_IMAGE)]
    parts += [Part("initrd", f"{INITRD} (dracut)", _output_size(initrd, INITRD)),
              Part("kernel", KERNEL, _output_size(initrd, KERNEL))]
    efi = _efi(record)
    parts = sorted([p for p in [*parts, efi] if p is not None and p.size > 0], key=lambda p: -p.size)
    iso_size = int(record.get("iso", {}).get("size") or 0)
    rest = iso_size - sum(p.size for p in parts)
    if rest > 0:
        parts.append(Part("the rest", "GRUB for BIOS, menus, ISO 9660 and partition tables, padding", rest))
    return parts


def uncompressed_root(record: dict[str, Any]) -> int:
    """The root as the rootfs stage's tar holds it, before squashfs or EROFS compress it."""
    return _output_size(_stage(record, "rootfs"), ROOT_TAR)


def largest_packages(record: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    """The largest packages by installed size, largest first, and the total of all packages
    (None: the report predates installed sizes)."""
    sizes = record.get("installed_size") or {}
    ranked = [p for p in sizes.get("largest", []) if isinstance(p, dict) and isinstance(p.get("size"), int)]
    ranked.sort(key=lambda p: (-p["size"], str(p.get("name"))))
    total = sizes.get("total")
    return ranked, total if isinstance(total, int) else None
