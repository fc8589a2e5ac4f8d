"""The network-boot bundle (`run --pxe`): kernel, initrd, the live image the initrd fetches
(the ISO itself, as KIWI boots it, or the bare squashfs) with its `.sha256`, and boot configs,
in `<basename>.pxe/` beside the ISO.

The kernel and initrd come from the initrd stage (built with the network modules the plan
asked for), the image from the checksum or squashfs stage; the configs, with the kernel
command line the plan made, are written at export, so changing only the URL, the image kind
or the appended parameters re-runs no stage. `make_server` is `liveorch serve-pxe`.
"""

from __future__ import annotations

import enum
import functools
import http.server
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liveorch.orchestrator.errors import UsageError

# QEMU's user network shows the host as 10.0.2.2, and `liveorch serve-pxe` listens on port
# 8000: the default works for a QEMU guest on the build machine. Real fleets set --pxe-url.
DEFAULT_PXE_URL = "http://10.0.2.2:8000/"
KERNEL = "vmlinuz"
INITRD = "initrd.img"
IMAGE = "squashfs.img"
SHA256_SUFFIX = ".sha256"  # beside the image: the initrd checks the download against it
IPXE_SCRIPT = "boot.ipxe"
PXELINUX_CONFIG = "pxelinux.cfg/default"
GRUB_CONFIG = "grub.cfg"
# DHCP's boot file for UEFI clients: GRUB built by the iso stage, which reads GRUB_CONFIG
# beside it by TFTP.
UEFI_LOADER = "bootx64.efi"


# Extra kernel parameters (--pxe-append) go into iPXE, PXELINUX and GRUB configs unquoted:
# words of characters none of them treats specially.
APPEND_WORD = re.compile(r"[A-Za-z0-9._,:/=+@%-]+")


class NetworkImage(enum.StrEnum):
    """What root=live:URL fetches: the ISO itself (KIWI's way; checked against its .sha256 or
    its implanted checksum, and what rd.kiwi.live.system deploys to a disk), or the bare
    squashfs (smaller; the squashfs root layout only)."""

    ISO = "iso"
    SQUASHFS = "squashfs"


@dataclass(frozen=True)
class PxeBundle:
    url: str  # where the bundle's directory is served; ends with /
    kernel_cmdline: str
    title: str
    image: str = IMAGE  # the file in the bundle that root=live: names

    @property
    def image_url(self) -> str:
        return self.url + self.image


def check_url(url: str) -> str:
    """The bundle's base URL, ending with /; the initrd fetches with curl over http, https or ftp."""
    if not url.startswith(("http://", "https://", "ftp://")) or len(url.split("/", 3)[2]) == 0:
        raise UsageError(f"--pxe-url {url!r}: give an http://, https:// or ftp:// URL of the bundle's directory",
                         hint=f"e.g. {DEFAULT_PXE_URL} (a QEMU guest reaching `liveorch serve-pxe` on this host)")
    if any(c.isspace() for c in url):
        raise UsageError(f"--pxe-url {url!r} must not contain spaces (it goes on the kernel command line)")
    return url if url.endswith("/") else url + "/"


def check_append(append: str) -> tuple[str, ...]:
    """--pxe-append's words, refused when a boot config would read one differently."""
    words = tuple(append.split())
    for word in words:
        if not APPEND_WORD.fullmatch(word):
            raise UsageError(f"--pxe-append {word!r}: kernel parameters here take only letters, digits and "
                             "._,:/=+@%- (they go unquoted into the iPXE, PXELINUX and GRUB configs)")
    return words


def ipxe_script(bundle: PxeBundle) -> str:
    """Kernel and initrd by names relative to the script: from TFTP when the script came by
    TFTP (QEMU's, a PXE server's), from HTTP when chained from `chain <url>boot.ipxe`."""
    return (
        "#!ipxe\n"
        f"echo Booting {bundle.title} over the network ({bundle.image_url})\n"
        "isset ${ip} || dhcp\n"
        f"kernel {KERNEL} initrd={INITRD} {bundle.kernel_cmdline}\n"
        f"initrd {INITRD}\n"
        "boot\n"
    )


def pxelinux_config(bundle: PxeBundle) -> str:
    """pxelinux.cfg/default for PXELINUX (syslinux), paths relative to the TFTP root."""
    return (
        "DEFAULT live\n"
        "PROMPT 0\n"
        "TIMEOUT 30\n"
        "LABEL live\n"
        f"  MENU LABEL {bundle.title}\n"
        f"  KERNEL {KERNEL}\n"
        f"  INITRD {INITRD}\n"
        f"  APPEND {bundle.kernel_cmdline}\n"
    )


def grub_config(bundle: PxeBundle) -> str:
    """grub.cfg for the bundle's UEFI_LOADER, or a GRUB netboot of one's own (grub-mknetdir):
    kernel and initrd by TFTP from the server GRUB came from ($root, e.g. tftp,10.0.2.2).
    TFTP rather than HTTP: measured under emulation with OVMF's own NIC driver on a busy
    machine, GRUB fetched the kernel and the 47 MiB initrd in 9-17 s by TFTP and 10-11 s by
    HTTP, about 3 s of a 100 s boot; HTTP would tie the config to the server's port and
    fail for https:// bundles (GRUB has no TLS)."""
    title = "'" + bundle.title.replace("'", "'\\''") + "'"
    return (
        "set timeout=3\n"
        f"menuentry {title} {{\n"
        f"    echo 'Loading {KERNEL} and {INITRD} from' $root\n"
        f"    linux ($root)/{KERNEL} {bundle.kernel_cmdline}\n"
        f"    initrd ($root)/{INITRD}\n"
        "}\n"
    )


def config_files(bundle: PxeBundle) -> dict[str, str]:
    return {IPXE_SCRIPT: ipxe_script(bundle), PXELINUX_CONFIG: pxelinux_config(bundle),
            GRUB_CONFIG: grub_config(bundle)}


def find_bundle(path: Path) -> Path:
    """A bundle directory itself, or the one `<basename>.pxe/` in a target directory."""
    if (path / IPXE_SCRIPT).is_file():
        return path
    bundles = sorted(p for p in path.glob("*.pxe") if (p / IPXE_SCRIPT).is_file()) if path.is_dir() else []
    if len(bundles) != 1:
        found = ", ".join(p.name for p in bundles) or "none"
        raise UsageError(f"{path}: expected one network-boot bundle (*.pxe/ with {IPXE_SCRIPT}), found {found}",
                         hint="build with `liveorch run ... --pxe`, or name the bundle directory itself")
    return bundles[0]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        print(f"{self.address_string()} {format % args}", flush=True)


def make_server(bundle: Path, address: str, port: int) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(_QuietHandler, directory=str(bundle))
    return http.server.ThreadingHTTPServer((address, port), handler)
