"""initrd: the image's kernel and a dracut initramfs that can find and mount the live image.

dracut runs inside the unpacked root (chroot), so the initramfs is built from exactly the
kernel, modules, systemd and dracut modules of the image itself. `--reproducible` with
SOURCE_DATE_EPOCH makes the cpio repeatable; `--no-hostonly` because the build
container is not the machine the ISO will boot on. dracut leaves the cpio uncompressed: the
stage compresses it with its own zstd and all its threads (stages/initramfs_compress.py).
With `secure_boot` it also hands on the image's signed shim and GRUB (stages/signed_chain.py),
for the iso stage's EFI image.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from liveorch.stages import signed_chain
from liveorch.stages.contract import Outcome, StageRequest, Workspace
from liveorch.stages.contracts.initrd import INITRD, KERNEL, OWN_MODULE_DIRS, InitrdOptions
from liveorch.stages.contracts.rootfs import ROOT_TAR
from liveorch.stages.dracut_steps import COMPRESSING, UNPACKED, DracutSteps
from liveorch.stages.initramfs_compress import InitramfsCompression, choose, compress
from liveorch.stages.kernel_config import parse_kernel_config
from liveorch.stages.tools import StageError, fresh_dir, log, package_version, report_progress, run

# Nodes dracut's scripts expect; created when the engine allows mknod, else skipped.
DEVICE_NODES = {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}
# Where fakeroot's preload library goes inside the root (never into the initramfs).
FAKEROOT_INSIDE = "/tmp/liveorch-libfakeroot.so"
# dracut's uncompressed cpio, inside the root.
UNCOMPRESSED = "tmp/initrd.cpio"
COMPRESSOR_PACKAGES = {InitramfsCompression.ZSTD: "zstd", InitramfsCompression.XZ: "xz-utils",
                       InitramfsCompression.GZIP: "gzip"}
FAKEROOT_CONF = "etc/dracut.conf.d/zz-liveorch-fakeroot.conf"
# The stage's own files (liveorch's dracut modules) sit beside this module in the image.
STAGE_FILES = Path(__file__).parent


def _unpack(root_tar: Path, root: Path) -> bool:
    """Unpack the root; returns whether the engine lets this stage create device nodes."""
    fresh_dir(root)
    run(["tar", "--extract", "--file", root_tar, "--directory", root, "--numeric-owner",
         "--preserve-permissions", "--xattrs", "--xattrs-include=*"], what="unpacking the root")
    can_mknod = True
    for name, (major, minor) in DEVICE_NODES.items():
        try:
            os.mknod(root / "dev" / name, 0o666 | 0o020000, os.makedev(major, minor))
        except OSError:
            can_mknod = False
    return can_mknod


def _fake_device_nodes(root: Path) -> list[str]:
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
    shutil.copyfile(library, root / FAKEROOT_INSIDE.lstrip("/"))
    conf = root / FAKEROOT_CONF
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f'mknod() {{ LD_PRELOAD={FAKEROOT_INSIDE} command mknod "$@"; }}\n'
                    f'cpio() {{ LD_PRELOAD={FAKEROOT_INSIDE} command cpio "$@"; }}\n')
    log("no device nodes (user namespace): dracut's mknod and cpio run under fakeroot")
    return ["fakeroot", "--unknown-is-real", "--", "env", "--unset=LD_PRELOAD"]


def install_own_modules(root: Path, modules: tuple[str, ...], source: Path = STAGE_FILES) -> None:
    """Copies the liveorch dracut modules that were asked for into the root's dracut, so the
    image needs no package of ours; the root tar itself is never changed by this stage."""
    for module in modules:
        if module not in OWN_MODULE_DIRS:
            continue
        folder = source / OWN_MODULE_DIRS[module]
        target = root / "usr/lib/dracut/modules.d" / folder.name
        shutil.copytree(folder, target, dirs_exist_ok=True)
        for script in target.iterdir():
            script.chmod(0o755 if script.suffix == ".sh" else 0o644)
        log(f"dracut module {module}: liveorch's own")


def _kernel_version(root: Path) -> str:
    modules = root / "lib/modules"
    versions = sorted(p.name for p in modules.iterdir()) if modules.is_dir() else []
    if len(versions) != 1:
        raise StageError(f"expected exactly one kernel in the image, found {versions or 'none'} "
                         "(add linux-image-amd64 to the packages)")
    return versions[0]


def _kernel_compression(root: Path, kver: str) -> InitramfsCompression:
    config = root / "boot" / f"config-{kver}"
    text = config.read_text(errors="replace") if config.is_file() else ""
    compression = choose(parse_kernel_config(text))
    log(f"initramfs compression: {compression.value} ({'from ' + config.name if text else 'no kernel config'})")
    return compression


def dracut_argv(root: Path, options: InitrdOptions, kver: str) -> list[str | Path]:
    """dracut writes the cpio uncompressed: the stage compresses it (initramfs_compress)."""
    drivers = ["--add-drivers", " ".join(options.drivers)] if options.drivers else []
    return [
        "chroot", root,
        "dracut",
        "--reproducible",
        "--no-hostonly",
        "--no-hostonly-cmdline",
        "--force",
        "--no-compress",
        "--add", " ".join(options.dracut_modules),
        *drivers,
        # Debian's dracut-network adds ifcfg (Red Hat's ifcfg files) to every initrd, which pulls in
        # dracut's network module even without network boot; there it would pick systemd-networkd,
        # which cannot be installed without dbus, and dracut fails. The network modules come only
        # when asked for (network-legacy for run --pxe).
        "--omit", "ifcfg",
        "--kver", kver,
        f"/{UNCOMPRESSED}",
    ]


def _dracut_version(root: Path) -> str:
    dracut = (root / "var/lib/dpkg/status").read_text().split("Package: dracut-core\n", 1)[-1]
    return next((ln[9:] for ln in dracut.splitlines() if ln.startswith("Version: ")), "unknown")


def execute(request: StageRequest, workspace: Workspace) -> Outcome:
    options: InitrdOptions = request.options
    root, out = workspace.tmp / "root", workspace.out
    can_mknod = _unpack(workspace.input(request, "rootfs") / ROOT_TAR, root)
    if not (root / "usr/bin/dracut").exists():
        raise StageError("the image has no dracut: add dracut and dracut-live to the packages")
    kver = _kernel_version(root)
    signed = signed_chain.collect(root, out) if options.secure_boot else {}
    install_own_modules(root, options.dracut_modules)
    prefix = [] if can_mknod else _fake_device_nodes(root)
    report_progress(UNPACKED, "root unpacked")
    run([*prefix, *dracut_argv(root, options, kver)],
        env={**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, what="dracut", watch=DracutSteps())
    compression = _kernel_compression(root, kver)
    report_progress(COMPRESSING, f"compressing the initramfs ({compression.value})")
    compress(root / UNCOMPRESSED, out / INITRD, compression, request.threads)
    shutil.copyfile(root / "boot" / f"vmlinuz-{kver}", out / KERNEL)
    for name in (INITRD, KERNEL):
        (out / name).chmod(0o644)
    log(f"kernel {kver}, initrd {(out / INITRD).stat().st_size // (1 << 20)} MiB")
    tools = {**package_version("tar", COMPRESSOR_PACKAGES[compression]),
             "dracut (image)": _dracut_version(root), **signed}
    shutil.rmtree(root, ignore_errors=True)
    return Outcome(tools=tools, facts={"kernel": kver})
