"""From a description to what each stage is asked to do.

The plan is the only place where description terms become stage options; stages never
see config.xml. It is computed before anything runs, so a description that cannot be
built fails here, in a fraction of a second, with a line number. Each stage's options are
the typed class its contract declares, filled in completely: no stage has defaults of its
own. Adding a stage means one more entry in `_stage_options`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from liveorch.orchestrator import live_boot
from liveorch.orchestrator.description import Description, LiveFlags, LiveType, PasswordFormat
from liveorch.orchestrator.description import User as DescribedUser
from liveorch.orchestrator.errors import DescriptionError, UsageError
from liveorch.orchestrator.passwords import hash_plain_password
from liveorch.orchestrator.pxe import IMAGE as PXE_IMAGE
from liveorch.orchestrator.pxe import NetworkImage, PxeBundle
from liveorch.orchestrator.stage_specs import spec_of
from liveorch.orchestrator.system_settings import locales_to_generate, setting_packages
from liveorch.stages.contracts.checksum import ChecksumOptions
from liveorch.stages.contracts.initrd import InitrdOptions
from liveorch.stages.contracts.iso import Firmware, IsoOptions
from liveorch.stages.contracts.resolve import AptRepository, Lock, ResolveOptions
from liveorch.stages.contracts.rootfs import AptSource, RootfsOptions, User
from liveorch.stages.contracts.squashfs import RootFilesystem, SquashfsOptions

ARCHITECTURE = "amd64"
KIWI_ARCH = "x86_64"
# Packages the live boot needs in the image; added when the description omits them.
LIVE_BOOT_PACKAGES = ("dracut", "dracut-live")
# flags="overlay" with hybridpersistent: liveorch's module partitions and formats at first boot.
PERSISTENCE_PACKAGES = ("fdisk", "e2fsprogs", "xfsprogs")
DEFAULT_HOOK_TIMEOUT = 1800
SERIAL_CONSOLE = "ttyS0"
# firmware="uefi": the distribution's signed boot chain (shim, GRUB), per architecture; the
# initrd stage takes the binaries out of the image, so they are locked and recorded.
SECURE_BOOT_PACKAGES = {"amd64": ("shim-signed", "grub-efi-amd64-signed")}
# KIWI's live boot module is not in Debian: liveorch's initrd stage stands in for it.
KIWI_ONLY_PACKAGES = ("dracut-kiwi-live",)
# --pxe: the initrd brings the network up (dracut's network-legacy, which runs dhclient from
# isc-dhcp-client, a dependency of dracut-network, and needs procps' pgrep) and fetches the
# image with curl.
NETWORK_BOOT_PACKAGES = ("dracut-network", "procps", "curl")


@dataclass
class BuildPlan:
    image_name: str
    iso_name: str
    notes: list[str]
    options: dict[str, Any] = field(default_factory=dict)  # stage -> its contract's options object
    warnings: list[str] = field(default_factory=list)  # trust decisions the user should see
    pxe: PxeBundle | None = None  # --pxe: the network-boot bundle's URL and kernel command line
    live_root: dict[str, str | None] = field(default_factory=dict)  # the root layout, for the report

    def network(self, stage: str) -> bool:
        """Only stages that declare the network get it, and not even those offline."""
        return spec_of(stage).network and not self.options["resolve"].offline

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


def _packages(description: Description, notes: list[str], network: str | None = None) -> tuple[str, ...]:
    """network: why the initrd needs the network (--pxe, or a kernelcmdline parameter), if it does."""
    names = [n for n in description.packages if n not in KIWI_ONLY_PACKAGES]
    if len(names) != len(description.packages):
        notes.append("dracut-kiwi-live is KIWI's own module: liveorch's initrd stage provides the live boot")
    if description.live.mediacheck:
        _add_missing(names, notes, ("isomd5sum",),
                     'mediacheck="true": added {package} so the initrd can verify the medium (rd.live.check)')
    _add_missing(names, notes, _live_boot_packages(description),
                 "added {package}: the live initrd is built from the image's own tools")
    # <timezone>, <locale>, <keytable>: as with dracut, what they need is added, as a KIWI user expects.
    for addition in setting_packages(description):
        if addition.package not in names:
            names.append(addition.package)
            notes.append(addition.note)
    if description.live.layout.verity is not None and description.live.flags is LiveFlags.OVERLAY:
        # dmsquash's dracut-live already depends on it
        _add_missing(names, notes, ("dmsetup",), "verity_blocks: added {package} to open the root through dm-verity")
    if network:
        _add_missing(names, notes, NETWORK_BOOT_PACKAGES,
                     network + ": added {package} so the initrd can bring up the network and fetch the live image")
    if description.live.firmware is Firmware.UEFI:
        _add_missing(names, notes, secure_boot_packages(ARCHITECTURE),
                     'firmware="uefi": added {package} for the Secure Boot chain')
    return tuple(names)


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
    if live.flags is not LiveFlags.OVERLAY:
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
        "kiwi_firmware": live.firmware.value,
        "kiwi_bootloader": "grub2",
        "kiwi_iso_volid": volid,
        "kiwi_hybridpersistent": str(live.hybridpersistent).lower(),
        "kiwi_hybridpersistent_filesystem": live.hybridpersistent_filesystem.value,
        "kiwi_live_flags": live.flags.value,
    }


def _notes(description: Description) -> list[str]:
    live = description.live
    notes = list(description.warnings)
    if description.bootloader_theme:
        notes.append(f"bootloader theme {description.bootloader_theme!r}: the serial/text GRUB menu has no theme; "
                     "ignored")
    if live.flags is LiveFlags.OVERLAY:
        notes.append('flags="overlay" boots through liveorch\'s own live module')
    if live.hybridpersistent and live.flags is not LiveFlags.OVERLAY:
        notes.append('hybridpersistent="true" needs flags="overlay" (liveorch\'s live module); '
                     'dracut\'s dmsquash-live boots without persistence')
    return notes


def _overlay_kind(live: LiveType) -> str:
    if live.flags is LiveFlags.DMSQUASH and live.layout.filesystem.in_squashfs:
        return "made writable by a device-mapper snapshot (dracut's dmsquash-live)"
    module = "liveorch's live module" if live.flags is LiveFlags.OVERLAY else "dracut's dmsquash-live"
    hint = ' (filesystem="ext4" or "xfs" gives the device-mapper snapshot)' if live.flags is LiveFlags.DMSQUASH else ""
    return f"made writable by overlayfs ({module}){hint}"


def trust_warnings(description: Description) -> list[str]:
    """Repositories used without signature checks: allowed (KIWI's own tests use them), never silently."""
    warnings = []
    for repository in description.repositories:
        if repository.source.startswith("file://"):
            warnings.append(f"repository {repository.alias!r} ({repository.source}) is a local file:// repository: "
                            "its packages are used without signature checks")
        elif repository.trusted:
            warnings.append(f"repository {repository.alias!r} ({repository.source}) has repository_gpgcheck=\"false\": "
                            "its packages are used without signature checks")
    return warnings


def _repositories(description: Description) -> tuple[AptRepository, ...]:
    return tuple(AptRepository(url=r.source, suite=r.distribution, components=r.components, alias=r.alias,
                               trusted=r.trusted,
                               signing_keys=tuple(base64.b64encode(k).decode("ascii") for k in r.signing_keys))
                 for r in description.repositories)


def _user(description: Description, user: DescribedUser) -> User:
    """A plain password is hashed here, on the host, with a salt from public names only:
    nothing after this point (requests, keys, volumes, logs, reports) sees it."""
    if user.password is None:
        password_hash = "*"
    elif user.pwdformat is PasswordFormat.PLAIN:
        password_hash = hash_plain_password(user.password, description.name, user.name)
    else:
        password_hash = user.password  # a crypt(3) hash already (the description checked it)
    return User(name=user.name, password_hash=password_hash, home=user.home, shell=user.shell,
                groups=tuple(user.groups), id=user.id, realname=user.realname)


def _rootfs_options(description: Description, volid: str, payload_sha256: str | None,
                    hook_timeout: int) -> RootfsOptions:
    return RootfsOptions(
        suite=description.repositories[0].distribution,
        hostname=description.name,
        locale=description.locale,
        keytable=description.keytable,
        timezone=description.timezone,
        generate_locales=locales_to_generate(description),
        users=tuple(_user(description, u) for u in description.users),
        serial_console=SERIAL_CONSOLE,
        image_sources=tuple(AptSource(r.source, r.distribution, r.components)
                            for r in description.repositories if r.imageinclude),
        payload_sha256=payload_sha256,
        archives=tuple(description.archives),
        delete_packages=tuple(description.delete_packages),
        profile=_profile_variables(description, volid),
        hook_timeout=hook_timeout,
    )


def _stage_options(description: Description, notes: list[str], lock: Lock | None, offline: bool,
                   payload_sha256: str | None, hook_timeout: int, pxe: bool) -> dict[str, Any]:
    """One entry per stage: its contract's options class, every field set. The initrd carries
    the network with --pxe, or when the description's kernelcmdline needs it (ip=, a network
    root), and only then."""
    live = description.live
    parameter = live_boot.network_parameter(live)
    network = "--pxe" if pxe else (f'kernelcmdline="... {parameter} ..."' if parameter else None)
    network_boot = network is not None
    volid = live.volid or default_volid(description.name)
    title = description.displayname or volid
    return {
        "resolve": ResolveOptions(architecture=ARCHITECTURE, repositories=_repositories(description),
                                  packages=_packages(description, notes, network), lock=lock,
                                  offline=offline),
        "rootfs": _rootfs_options(description, volid, payload_sha256, hook_timeout),
        "squashfs": SquashfsOptions(filesystem=live.layout.filesystem, compression=live.squashfscompression,
                                    erofs=live.layout.erofs),
        "initrd": InitrdOptions(dracut_modules=live_boot.dracut_modules(live, network_boot),
                                drivers=live_boot.initrd_drivers(live, network_boot),
                                secure_boot=live.firmware is Firmware.UEFI),
        "iso": IsoOptions(volid=volid, title=title, application_id=live.application_id or volid,
                          publisher=live.publisher or "liveorch", firmware=live.firmware,
                          efifatimagesize=live.efifatimagesize, menu=live_boot.boot_menu(live, volid, title),
                          verity=live.layout.verity, netboot_loader=pxe),
        "checksum": ChecksumOptions(iso_name=iso_name(description), mediacheck=live.mediacheck),
    }


def iso_name(description: Description) -> str:
    return f"{description.name}.{KIWI_ARCH}-{description.version}.iso"


def _network_image(description: Description, kind: NetworkImage, append: tuple[str, ...]) -> str:
    """The file root=live: fetches, after refusing what that network boot cannot serve."""
    live = description.live
    if live.layout.verity is not None:
        raise DescriptionError("--pxe does not serve a verity root (verity_blocks): its hash tree and root hash "
                               "are read from a medium", description.path, live.layout.line)
    if kind is NetworkImage.SQUASHFS and live.layout.filesystem is not RootFilesystem.SQUASHFS:
        raise DescriptionError(f"--pxe-image squashfs serves the squashfs root layout only, not filesystem="
                               f"\"{live.layout.filesystem}\" (--pxe-image iso serves every layout)",
                               description.path, live.layout.line)
    deploys = [word for word in append if word.startswith("rd.kiwi.live.system=")]
    if deploys and (kind is NetworkImage.SQUASHFS or live.flags is not LiveFlags.OVERLAY):
        raise UsageError(f"--pxe-append {deploys[0]}: deploying to a disk needs flags=\"overlay\" (liveorch's "
                         "live module) and --pxe-image iso; dracut's dmsquash-live runs from RAM only")
    return iso_name(description) if kind is NetworkImage.ISO else PXE_IMAGE


def make_plan(description: Description, lock: Lock | None = None, offline: bool = False,
              payload_sha256: str | None = None, hook_timeout: int = DEFAULT_HOOK_TIMEOUT,
              pxe_url: str | None = None, pxe_image: NetworkImage = NetworkImage.ISO,
              pxe_append: tuple[str, ...] = ()) -> BuildPlan:
    """pxe_url: also make a network-boot bundle whose kernel command line fetches pxe_image
    there, with pxe_append's parameters after the plan's own."""
    notes = _notes(description)
    options = _stage_options(description, notes, lock, offline, payload_sha256, hook_timeout, pxe_url is not None)
    pxe = None
    live = description.live
    if pxe_url is not None:
        image = _network_image(description, pxe_image, pxe_append)
        root = f"root=live:{pxe_url}{image}"
        cmdline = live_boot.kernel_cmdline(description.live, root, network=True)
        pxe = PxeBundle(url=pxe_url, title=options["iso"].title, image=image,
                        kernel_cmdline=" ".join([cmdline, *pxe_append]))
    live_root = {"filesystem": live.layout.filesystem.value,
                 "erofscompression": str(live.layout.erofs) if live.layout.erofs else None,
                 "medium": live.layout.describe(), "overlay": _overlay_kind(live),
                 "verity_blocks": str(live.layout.verity) if live.layout.verity else None}
    return BuildPlan(image_name=description.name, iso_name=iso_name(description), notes=notes, options=options,
                     warnings=trust_warnings(description), pxe=pxe, live_root=live_root)
