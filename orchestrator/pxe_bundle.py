"""Writes the network-boot bundle (`run --pxe`) into the target directory: the kernel and
initrd (with the network modules) from the initrd stage, the squashfs, and the boot
configs with the plan's kernel command line. The whole folder is made under a temporary
name and swapped in, so a bundle is never half there and never written through a symlink.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from liveorch.orchestrator import pxe
from liveorch.orchestrator.export import StoreReader
from liveorch.orchestrator.pipeline import StageReport
from liveorch.orchestrator.target_files import replace_directory, write_file_atomic
from liveorch.stages.contracts.initrd import INITRD, KERNEL
from liveorch.stages.contracts.squashfs import SQUASHFS_IMAGE

COPIES = (("initrd", KERNEL, pxe.KERNEL), ("initrd", INITRD, pxe.INITRD), ("squashfs", SQUASHFS_IMAGE, pxe.IMAGE))


def write_bundle(bundle: pxe.PxeBundle, reports: dict[str, StageReport], store: StoreReader,
                 directory: Path) -> dict[str, Any]:
    """Fill <basename>.pxe/; returns its description for report.json."""
    files: dict[str, dict[str, Any]] = {}

    def fill(folder: Path) -> None:
        (folder / "pxelinux.cfg").mkdir()
        for stage, output, name in COPIES:
            artifact = reports[stage].record.outputs[output]
            store.export(stage, reports[stage].key, output, folder / name, artifact.sha256)
            files[name] = {"size": artifact.size, "sha256": artifact.sha256}
        for name, text in pxe.config_files(bundle).items():
            write_file_atomic(folder / name, text)
            files[name] = {"size": len(text.encode()), "sha256": hashlib.sha256(text.encode()).hexdigest()}

    replace_directory(directory, fill)
    return {"directory": directory.name, "url": bundle.url, "image_url": bundle.image_url,
            "kernel_cmdline": bundle.kernel_cmdline, "ipxe_script": pxe.IPXE_SCRIPT,
            "pxelinux_config": pxe.PXELINUX_CONFIG, "grub_config": pxe.GRUB_CONFIG,
            "files": dict(sorted(files.items()))}
