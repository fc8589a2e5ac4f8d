"""From a description to what each stage is asked to do.

The plan is the only place where description terms become stage options; stages never
see config.xml. It is computed before anything runs, so a description that cannot be
built fails here, in a fraction of a second, with a line number.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from liveorch.orchestrator.description import Description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.stages.contract import ARTIFACTS_MOUNT, NETWORKED_STAGES

ARCHITECTURE = "amd64"
KIWI_ARCH = "x86_64"
# Packages the live boot needs in the image; added when the description omits them.
LIVE_BOOT_PACKAGES = ("dracut", "dracut-live")
# flags="overlay" with hybridpersistent: liveorch's module partitions and formats at first boot.
PERSISTENCE_PACKAGES = ("fdisk", "e2fsprogs", "xfsprogs")
DEFAULT_HOOK_TIMEOUT = 1800
# firmware="uefi": the distribution's signed boot chain (shim, GRUB), per architecture; the
# initrd stage takes the binaries out of the image, so they are locked and recorded.
SECURE_BOOT_PACKAGES = {"amd64": ("shim-signed", "grub-efi-amd64-signed")}
# KIWI's live boot module is not in Debian: liveorch's initrd stage stands in for it.
KIWI_ONLY_PACKAGES = ("dracut-kiwi-live",)
# --pxe: the initrd brings the network up (dracut's network-legacy, which runs dhclient from
# isc-dhcp-client, a dependency of dracut-network, and needs procps' pgrep) and fetches the
# image with curl.
NETWORK_BOOT_PACKAGES = ("dracut-network", "procps", "curl")
# The dracut modules for that, per live flag: dracut's livenet for dmsquash; for overlay,
# url-lib (curl and its CA bundle) beside liveorch's module. network-legacy is named so
# dracut's network module does not pick systemd-networkd, which the image has too.
NETWORK_BOOT_MODULES = {"dmsquash": ("livenet", "network-legacy"), "overlay": ("url-lib", "network-legacy")}


@dataclass
class BuildPlan:
    image_name: str
    iso_name: str
    notes: list[str]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    pxe_url: str | None = None  # --pxe: where the network-boot bundle will be served

    def network(self, stage: str) -> bool:
        """Only resolve fetches, and not even it when building offline from the package pool."""
        return stage in NETWORKED_STAGES and not self.options["resolve"].get("offline")

    @property
    def basename(self) -> str:
        return self.iso_name.removesuffix(".iso")


def default_volid(name: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())[:32]


def _add_missing(names: list[str], notes: list[str], packages: tuple[str, ...], note: str) -> None:
    """Appends each package the description lacks, with a note ({package} in `note` names it)."""
    for package in packages:
        if package not in names:
            names.append(package)
            notes.append(note.format(package=package))


def _packages(description: Description, notes: list[str], pxe: bool = False) -> list[str]:
    names = [n for n in description.packages if n not in KIWI_ONLY_PACKAGES]
    if len(names) != len(description.packages):
        notes.append("dracut-kiwi-live is KIWI's own module: liveorch's initrd stage provides the live boot")
    if description.live.mediacheck:
        _add_missing(names, notes, ("isomd5sum",),
                     'mediacheck="true": added {package} so the initrd can verify the medium (rd.live.check)')
    _add_missing(names, notes, _live_boot_packages(description),
                 "added {package}: the live initrd is built from the image's own tools")
    if pxe:
        _add_missing(names, notes, NETWORK_BOOT_PACKAGES,
                     "--pxe: added {package} so the initrd can fetch the live image over the network")
    if description.live.firmware == "uefi":
        _add_missing(names, notes, secure_boot_packages(ARCHITECTURE),
                     'firmware="uefi": added {package} for the Secure Boot chain')
    return names


def secure_boot_packages(architecture: str) -> tuple[str, ...]:
    if architecture not in SECURE_BOOT_PACKAGES:
        raise DescriptionError(f'firmware="uefi" (Secure Boot) needs a signed shim and GRUB, which liveorch '
                               f"knows for {', '.join(SECURE_BOOT_PACKAGES)} only, not {architecture}",
                               hint='firmware="efi" builds a plain EFI boot')
    return SECURE_BOOT_PACKAGES[architecture]


def _live_boot_packages(description: Description) -> tuple[str, ...]:
    """What the initrd needs from the image: dracut, plus dracut's live modules for
    dmsquash, or for overlay with persistence the partitioning and mkfs tools (both file
    systems, so rd.live.overlay.cowfs stays a boot-time choice)."""
    live = description.live
    if live.flags != "overlay":
        return LIVE_BOOT_PACKAGES
    return ("dracut", *(PERSISTENCE_PACKAGES if live.hybridpersistent else ()))


def _profile_variables(description: Description, volid: str) -> dict[str, str]:
    """KIWI's /.profile for config.sh and images.sh."""
    live = description.live
    return {
        "kiwi_iname": description.name,
        "kiwi_iversion": description.version,
        "kiwi_displayname": description.displayname,
        "kiwi_profiles": ",".join(description.profiles),
        "kiwi_type": "iso",
        "kiwi_arch": KIWI_ARCH,
        "kiwi_language": description.locale or "",
        "kiwi_keytable": description.keytable or "",
        "kiwi_timezone": description.timezone or "",
        "kiwi_firmware": live.firmware,
        "kiwi_bootloader": "grub2",
        "kiwi_iso_volid": volid,
        "kiwi_hybridpersistent": str(live.hybridpersistent).lower(),
        "kiwi_hybridpersistent_filesystem": live.hybridpersistent_filesystem,
        "kiwi_live_flags": live.flags,
    }


def make_plan(description: Description, lock: dict[str, Any] | None = None, offline: bool = False,
              payload_sha256: str | None = None, hook_timeout: int = DEFAULT_HOOK_TIMEOUT,
              pxe_url: str | None = None) -> BuildPlan:
    """pxe_url: also make a network-boot bundle whose kernel command line fetches the image there."""
    notes: list[str] = []
    live = description.live
    notes += description.warnings
    if description.bootloader_theme:
        notes.append(f"bootloader theme {description.bootloader_theme!r}: the serial/text GRUB menu has no theme; "
                     "ignored")
    if live.flags == "overlay":
        notes.append('flags="overlay" boots through liveorch\'s own live module (squashfs + overlayfs)')
    if live.hybridpersistent and live.flags != "overlay":
        notes.append('hybridpersistent="true" needs flags="overlay" (liveorch\'s live module); '
                     'dracut\'s dmsquash-live boots without persistence')
    iso_name = f"{description.name}.{KIWI_ARCH}-{description.version}.iso"
    volid = live.volid or default_volid(description.name)
    repositories = [
        {"url": r.source, "suite": r.distribution, "components": list(r.components), "alias": r.alias,
         "trusted": r.trusted, "signing_keys": [base64.b64encode(key).decode("ascii") for key in r.signing_keys]}
        for r in description.repositories
    ]
    users = [
        {"name": u.name, "password": u.password, "pwdformat": u.pwdformat, "home": u.home, "shell": u.shell,
         "groups": list(u.groups), "id": u.id, "realname": u.realname}
        for u in description.users
    ]
    options: dict[str, dict[str, Any]] = {
        "resolve": {
            "architecture": ARCHITECTURE,
            "repositories": repositories,
            "packages": _packages(description, notes, pxe=pxe_url is not None),
            "lock": lock,
            "offline": offline,
        },
        "rootfs": {
            "suite": description.repositories[0].distribution,
            "hostname": description.name,
            "locale": description.locale,
            "keytable": description.keytable,
            "timezone": description.timezone,
            "users": users,
            "serial_console": "ttyS0",
            "image_repositories": [r for r, source in zip(repositories, description.repositories, strict=True)
                                   if source.imageinclude],
            "payload": f"{ARTIFACTS_MOUNT}/description/{payload_sha256}/payload.tar" if payload_sha256 else None,
            "archives": description.archives,
            "delete_packages": description.delete_packages,
            "profile": _profile_variables(description, volid),
            "hook_timeout": hook_timeout,
        },
        "squashfs": {"compression": live.squashfscompression},
        "initrd": {"dracut_modules": _dracut_modules(live.flags, pxe_url is not None),
                    "secure_boot": live.firmware == "uefi"},
        "iso": {
            "iso_name": iso_name,
            "volid": volid,
            "title": description.displayname,
            "application_id": live.application_id,
            "publisher": live.publisher,
            "firmware": live.firmware,
            "flags": live.flags,
            "kernelcmdline": live.kernelcmdline,
            "efifatimagesize": live.efifatimagesize,
            "console": live.bootloader_console,
            "timeout": live.bootloader_timeout,
            "timeout_style": live.bootloader_timeout_style,
            "mediacheck": live.mediacheck,
            "persistent_filesystem": live.hybridpersistent_filesystem if live.hybridpersistent else None,
        },
        "checksum": {"iso_name": iso_name, "mediacheck": live.mediacheck},
    }
    return BuildPlan(image_name=description.name, iso_name=iso_name, notes=notes, options=options, pxe_url=pxe_url)


def _dracut_modules(flags: str, network_boot: bool) -> list[str]:
    flag = "overlay" if flags == "overlay" else "dmsquash"
    live = ["liveorch-live" if flag == "overlay" else "dmsquash-live"]
    return live + list(NETWORK_BOOT_MODULES[flag] if network_boot else ())
