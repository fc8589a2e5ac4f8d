"""initrd: the image's kernel and a dracut initramfs that can find and mount the live image.

dracut runs inside the unpacked root (chroot), so the initramfs is built from exactly the
kernel, modules, systemd and dracut modules of the image itself. `--reproducible` with
SOURCE_DATE_EPOCH makes the cpio repeatable; `--no-hostonly` because the build
container is not the machine the ISO will boot on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from stages.contract import StageRequest
from stages.tools import Outcome, StageError, log, package_version, run

ROOT = Path("/tmp/root")
# Nodes dracut's scripts expect; created when the engine allows mknod, else skipped.
DEVICE_NODES = {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}


def _unpack(root_tar: Path) -> None:
    ROOT.mkdir(parents=True)
    run(["tar", "--extract", "--file", root_tar, "--directory", ROOT, "--numeric-owner",
         "--preserve-permissions", "--xattrs", "--xattrs-include=*"], what="unpacking the root")
    for name, (major, minor) in DEVICE_NODES.items():
        with contextlib.suppress(OSError):
            os.mknod(ROOT / "dev" / name, 0o666 | 0o020000, os.makedev(major, minor))


def _kernel_version() -> str:
    versions = sorted(p.name for p in (ROOT / "lib/modules").iterdir()) if (ROOT / "lib/modules").is_dir() else []
    if len(versions) != 1:
        raise StageError(f"expected exactly one kernel in the image, found {versions or 'none'} "
                         "(add linux-image-amd64 to the packages)")
    return versions[0]


def _compressor() -> str:
    for tool, flag in (("zstd", "--zstd"), ("xz", "--xz")):
        if (ROOT / "usr/bin" / tool).exists():
            return flag
    return "--gzip"


def execute(request: StageRequest, out: Path) -> Outcome:
    _unpack(Path(request.inputs["rootfs"]) / "root.tar")
    if not (ROOT / "usr/bin/dracut").exists():
        raise StageError("the image has no dracut: add dracut and dracut-live to the packages")
    kver = _kernel_version()
    modules = request.options.get("dracut_modules", ["dmsquash-live"])
    run([
        "chroot", ROOT,
        "dracut",
        "--reproducible",
        "--no-hostonly",
        "--no-hostonly-cmdline",
        "--force",
        _compressor(),
        "--add", " ".join(modules),
        "--kver", kver,
        "/tmp/initrd.img",
    ], env={**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, what="dracut")
    shutil.copyfile(ROOT / "tmp/initrd.img", out / "initrd.img")
    shutil.copyfile(ROOT / "boot" / f"vmlinuz-{kver}", out / "vmlinuz")
    for name in ("initrd.img", "vmlinuz"):
        (out / name).chmod(0o644)
    dracut = (ROOT / "var/lib/dpkg/status").read_text().split("Package: dracut-core\n", 1)[-1]
    dracut_version = next((ln[9:] for ln in dracut.splitlines() if ln.startswith("Version: ")), "unknown")
    log(f"kernel {kver}, initrd {(out / 'initrd.img').stat().st_size // (1 << 20)} MiB")
    return Outcome(tools={**package_version("tar"), "dracut (image)": dracut_version}, facts={"kernel": kver})
