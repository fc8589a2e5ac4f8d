"""The Secure Boot chain of a firmware="uefi" ISO: the image's own signed shim and GRUB.

Debian ships the chain signed: shim (shim-signed) by Microsoft's third-party UEFI CA, which
PCs trust; MokManager (shim-helpers-amd64-signed), GRUB (grub-efi-amd64-signed) and the
kernel (linux-image-amd64) by Debian, whose CA shim embeds. The planner adds shim-signed
and grub-efi-amd64-signed to the image's packages, so their versions are resolved, locked
and recorded (packages list, SBOM) like any other. Installing them into the root is
harmless: their maintainer scripts act only on a machine booted with EFI (/sys/firmware/efi,
absent in the rootfs stage's chroot) and call grub-install only for an existing ESP.

The initrd stage, which unpacks the root anyway, copies the binaries out of it (`collect`)
under the names its contract declares; the iso stage places them on the EFI partition
(stages/grub_efi.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from liveorch.stages.contracts.initrd import MOKMANAGER, SHIM, SIGNED_CHAIN, SIGNED_GRUB
from liveorch.stages.tools import StageError

# output -> (file in the image's root, the package that installs it)
SIGNED_BINARIES = {
    SHIM: ("usr/lib/shim/shimx64.efi.signed", "shim-signed"),
    MOKMANAGER: ("usr/lib/shim/mmx64.efi.signed", "shim-helpers-amd64-signed"),
    SIGNED_GRUB: ("usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed", "grub-efi-amd64-signed"),
}


def collect(root: Path, out: Path) -> dict[str, str]:
    """Copy the signed binaries out of the unpacked root; returns their packages' versions."""
    missing = sorted({package for path, package in SIGNED_BINARIES.values() if not (root / path).is_file()})
    if missing:
        raise StageError(f'firmware="uefi" needs the signed boot chain, but the image lacks {", ".join(missing)} '
                         "(removed by --delete-package, config.sh or images.sh?)")
    (out / SIGNED_CHAIN).mkdir()
    for output, (path, _package) in SIGNED_BINARIES.items():
        shutil.copyfile(root / path, out / output)
        (out / output).chmod(0o644)
    return package_versions(root, sorted({package for _path, package in SIGNED_BINARIES.values()}))


def package_versions(root: Path, names: list[str]) -> dict[str, str]:
    """`<package> (image)`: version, from the root's dpkg status."""
    versions: dict[str, str] = {}
    for record in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in record.splitlines() if ": " in line and line[0] != " ")
        if fields.get("Package") in names:
            versions[f"{fields['Package']} (image)"] = fields.get("Version", "unknown")
    return versions
