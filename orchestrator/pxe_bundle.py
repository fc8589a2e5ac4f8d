"""Writes the network-boot bundle (`run --pxe`) into the target directory: the kernel and
initrd (with the network modules) from the initrd stage, the iso stage's GRUB for UEFI
clients, the image root=live: names (the ISO, or the squashfs) with its `.sha256`, and the
boot configs with the plan's kernel command line. The whole folder is made under a temporary
name and swapped in, so a bundle is never half there and never written through a symlink.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from liveorch.orchestrator import pxe
from liveorch.orchestrator.export import Export, StoreReader, planned_exports
from liveorch.orchestrator.pipeline import StageReport
from liveorch.orchestrator.plan import BuildPlan
from liveorch.orchestrator.target_files import replace_directory, write_file_atomic
from liveorch.stages.contracts.initrd import INITRD, KERNEL
from liveorch.stages.contracts.iso import NETBOOT_LOADER
from liveorch.stages.contracts.squashfs import SQUASHFS_IMAGE

# (stage, its output, name in the bundle): the boot files, whatever image root=live: names.
BOOT_FILES = (("initrd", KERNEL, pxe.KERNEL), ("initrd", INITRD, pxe.INITRD), ("iso", NETBOOT_LOADER, pxe.UEFI_LOADER))


def bundle_copies(plan: BuildPlan, bundle: pxe.PxeBundle, reports: dict[str, StageReport]) -> dict[str, Export]:
    """Bundle name -> the stage output copied there: the kernel, the initrd, the UEFI loader
    and the image."""
    copies = {name: Export(stage, reports[stage].key, output, reports[stage].record.outputs[output])
              for stage, output, name in BOOT_FILES}
    if bundle.image == pxe.IMAGE:
        squashfs = reports["squashfs"]
        copies[pxe.IMAGE] = Export("squashfs", squashfs.key, SQUASHFS_IMAGE, squashfs.record.outputs[SQUASHFS_IMAGE])
    else:
        exports = planned_exports(plan, reports)
        copies[plan.iso_name] = exports[plan.iso_name]
    return copies


def _text_file(folder: Path, name: str, text: str) -> dict[str, Any]:
    write_file_atomic(folder / name, text)
    return {"size": len(text.encode()), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def write_bundle(plan: BuildPlan, bundle: pxe.PxeBundle, reports: dict[str, StageReport], store: StoreReader,
                 directory: Path) -> dict[str, Any]:
    """Fill <basename>.pxe/; returns its description for report.json."""
    files: dict[str, dict[str, Any]] = {}

    def fill(folder: Path) -> None:
        (folder / "pxelinux.cfg").mkdir()
        for name, item in bundle_copies(plan, bundle, reports).items():
            store.export(item.stage, item.key, item.output, folder / name, item.artifact.sha256)
            files[name] = {"size": item.artifact.size, "sha256": item.artifact.sha256}
        # The initrd checks the download against this before it mounts anything from it.
        image_sum = f"{files[bundle.image]['sha256']}  {bundle.image}\n"
        files[bundle.image + pxe.SHA256_SUFFIX] = _text_file(folder, bundle.image + pxe.SHA256_SUFFIX, image_sum)
        for name, text in pxe.config_files(bundle).items():
            files[name] = _text_file(folder, name, text)

    replace_directory(directory, fill)
    return {"directory": directory.name, "url": bundle.url, "image_url": bundle.image_url,
            "kernel_cmdline": bundle.kernel_cmdline, "ipxe_script": pxe.IPXE_SCRIPT,
            "pxelinux_config": pxe.PXELINUX_CONFIG, "grub_config": pxe.GRUB_CONFIG, "uefi_loader": pxe.UEFI_LOADER,
            "files": dict(sorted(files.items()))}
