"""initrd: the image's kernel and a dracut initramfs that can find and mount the live image.

dracut runs inside the unpacked root (chroot), so the initramfs is built from exactly the
kernel, modules, systemd and dracut modules of the image itself. `--reproducible` with
SOURCE_DATE_EPOCH makes the cpio repeatable; `--no-hostonly` because the build
container is not the machine the ISO will boot on. With `secure_boot` it also hands on the
image's signed shim and GRUB (stages/secure_boot.py), for the iso stage's EFI image.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from liveorch.stages import secure_boot
from liveorch.stages.contract import StageRequest
from liveorch.stages.tools import Outcome, StageError, log, package_version, run

ROOT = Path("/tmp/root")
# Nodes dracut's scripts expect; created when the engine allows mknod, else skipped.
DEVICE_NODES = {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}
# Where fakeroot's preload library goes inside the root (never into the initramfs).
FAKEROOT_INSIDE = "/tmp/liveorch-libfakeroot.so"
FAKEROOT_CONF = "etc/dracut.conf.d/zz-liveorch-fakeroot.conf"
# liveorch's own dracut modules, shipped in the stage image (flags="overlay").
OWN_MODULES = Path(__file__).parent / "dracut"


def _unpack(root_tar: Path) -> bool:
    """Unpack the root; returns whether the engine lets this stage create device nodes."""
    ROOT.mkdir(parents=True)
    run(["tar", "--extract", "--file", root_tar, "--directory", ROOT, "--numeric-owner",
         "--preserve-permissions", "--xattrs", "--xattrs-include=*"], what="unpacking the root")
    can_mknod = True
    for name, (major, minor) in DEVICE_NODES.items():
        try:
            os.mknod(ROOT / "dev" / name, 0o666 | 0o020000, os.makedev(major, minor))
        except OSError:
            can_mknod = False
    return can_mknod


def _fake_device_nodes() -> list[str]:
    """The command prefix that lets dracut put its device nodes into the initramfs anyway.

    dracut mknods /dev/console, kmsg, null, random and urandom into the initramfs tree and
    cpio archives them. A user namespace (rootless Podman) cannot create device nodes, so
    there fakeroot's preload library records them and shows them to cpio as the devices
    they would be: the initramfs gets the same bytes as where mknod works (Docker). dracut
    removes LD_PRELOAD from its environment, so a dracut.conf.d snippet, which dracut's
    own shell sources, hands the library to just mknod and cpio; neither file is copied
    into the initramfs.
    """
    library = next(Path("/usr/lib").glob("*/libfakeroot/libfakeroot-sysv.so"), None)
    if library is None:
        raise StageError("the engine cannot create device nodes and the stage image has no fakeroot")
    shutil.copyfile(library, ROOT / FAKEROOT_INSIDE.lstrip("/"))
    conf = ROOT / FAKEROOT_CONF
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f'mknod() {{ LD_PRELOAD={FAKEROOT_INSIDE} command mknod "$@"; }}\n'
                    f'cpio() {{ LD_PRELOAD={FAKEROOT_INSIDE} command cpio "$@"; }}\n')
    log("no device nodes (user namespace): dracut's mknod and cpio run under fakeroot")
    return ["fakeroot", "--unknown-is-real", "--", "env", "--unset=LD_PRELOAD"]


def _install_own_modules(modules: list[str]) -> None:
    """Copies the liveorch dracut modules that were asked for into the root's dracut, so the
    image needs no package of ours; the root tar itself is never changed by this stage."""
    for source in sorted(OWN_MODULES.iterdir()):
        if source.name[:2].isdigit() and source.name[2:] in modules:
            target = ROOT / "usr/lib/dracut/modules.d" / source.name
            shutil.copytree(source, target, dirs_exist_ok=True)
            for script in target.iterdir():
                script.chmod(0o755 if script.suffix == ".sh" else 0o644)
            log(f"dracut module {source.name[2:]}: liveorch's own")


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
    can_mknod = _unpack(Path(request.inputs["rootfs"]) / "root.tar")
    if not (ROOT / "usr/bin/dracut").exists():
        raise StageError("the image has no dracut: add dracut and dracut-live to the packages")
    kver = _kernel_version()
    signed_chain = secure_boot.collect(ROOT, out) if request.options.get("secure_boot") else {}
    modules = request.options.get("dracut_modules", ["dmsquash-live"])
    _install_own_modules(modules)
    run([
        *([] if can_mknod else _fake_device_nodes()),
        "chroot", ROOT,
        "dracut",
        "--reproducible",
        "--no-hostonly",
        "--no-hostonly-cmdline",
        "--force",
        _compressor(),
        "--add", " ".join(modules),
        # Debian's dracut-network adds ifcfg (Red Hat's ifcfg files) to every initrd, which pulls in
        # dracut's network module even without network boot; there it would pick systemd-networkd,
        # which cannot be installed without dbus, and dracut fails. The network modules come only
        # when asked for (network-legacy for run --pxe).
        "--omit", "ifcfg",
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
    return Outcome(tools={**package_version("tar"), "dracut (image)": dracut_version, **signed_chain},
                   facts={"kernel": kver})
