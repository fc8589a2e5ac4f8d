"""rootfs: exactly the locked packages installed into a root, configured, as a deterministic tar.

mmdebstrap installs from a flat repository made of the resolved .debs (a copy:// source),
so the container needs no network and apt cannot pick anything the lock does not list.
Configuration (users, locale, time zone, hostname, consoles) happens on the tree; the
few commands that must run inside it go through chroot, which Docker's default
capabilities allow. The description's archives, root/ overlay and hooks are applied in
KIWI's order (stages/hooks.py). Everything that would make two builds differ (logs, caches,
machine-id, backup files, password change dates) is removed or pinned before the tar is
written with sorted names, numeric owners and clamped times.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from liveorch.stages.configure_root import configure_root, scrub_root
from liveorch.stages.contract import StageRequest
from liveorch.stages.hooks import apply_description
from liveorch.stages.package_info import write_package_info, write_verified
from liveorch.stages.tools import Outcome, StageError, capture, log, package_version, run

REPO = Path("/tmp/repo")
ROOT = Path("/tmp/root")
# Left empty in the image: the kernel and systemd fill them at boot.
EMPTY_DIRS = ("dev", "proc", "sys", "run", "tmp")


def _flat_repository(debs: Path) -> None:
    REPO.mkdir(parents=True)
    for deb in sorted(debs.glob("*.deb")):
        (REPO / deb.name).symlink_to(deb)
    with (REPO / "Packages").open("w") as packages:
        run(["apt-ftparchive", "packages", "."], cwd=REPO, stdout=packages, what="apt-ftparchive packages")
    with (REPO / "Release").open("w") as release:
        run(["apt-ftparchive", "-o", "APT::FTPArchive::Release::Suite=liveorch",
             "-o", "APT::FTPArchive::Release::Codename=liveorch", "release", "."],
            cwd=REPO, stdout=release, what="apt-ftparchive release")


def _install(lock: dict[str, Any], suite: str) -> None:
    names = [p["name"] for p in lock["packages"]]
    env = {**os.environ, "INITRD": "No", "DEBIAN_FRONTEND": "noninteractive"}
    run([
        "mmdebstrap",
        "--mode=root",
        "--variant=apt",
        "--format=directory",
        f"--architectures={lock['architecture']}",
        "--include=" + ",".join(names),
        "--aptopt=Acquire::Languages \"none\"",
        suite,
        str(ROOT),
        f"deb [trusted=yes] copy://{REPO} ./",
    ], env=env, what="mmdebstrap")


def _check_installed(lock: dict[str, Any], packages_file: Path, deleted: list[str]) -> None:
    """The root must hold exactly the locked packages (less the deleted ones), no more and no fewer."""
    installed = {line.split("|")[0]: line.split("|")[2] for line in packages_file.read_text().splitlines()}
    locked = {p["name"]: p["version"] for p in lock["packages"] if p["name"] not in deleted}
    if installed != locked:
        extra = sorted(set(installed) - set(locked))
        missing = sorted(set(locked) - set(installed))
        raise StageError(f"installed packages differ from the lock: extra {extra}, missing {missing}")


def _write_packages(out: Path) -> Path:
    """KIWI's .packages format: name|None|version|None|arch|None|None, sorted."""
    text = capture(["dpkg-query", f"--admindir={ROOT}/var/lib/dpkg", "-W",
                    "-f=${Package}|None|${Version}|None|${Architecture}|None|None\\n"])
    target = out / "packages"
    target.write_text("".join(sorted(line + "\n" for line in text.splitlines() if line)))
    return target


def _write_tar(out: Path, epoch: int) -> None:
    excludes = [f"--exclude=./{d}/*" for d in EMPTY_DIRS]
    run([
        "tar",
        "--create",
        "--file", out / "root.tar",
        "--directory", ROOT,
        "--format=posix",
        "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
        "--sort=name",
        "--numeric-owner",
        f"--mtime=@{epoch}",
        "--clamp-mtime",
        "--xattrs",
        "--xattrs-include=security.capability",
        *excludes,
        ".",
    ], what="tar")


def _shipped_mtime(path: str) -> int | None:
    """The mtime the package owning `path` gives it, read from that package's .deb."""
    query = subprocess.run(["dpkg-query", f"--admindir={ROOT}/var/lib/dpkg", "--search", path],
                           capture_output=True, text=True)
    lines = query.stdout.splitlines() if query.returncode == 0 else []
    owner = lines[0].rsplit(": ", 1)[0].split(", ")[0].split(":")[0] if lines else ""
    debs = sorted(REPO.glob(f"{owner}_*.deb")) if owner else []
    if not debs:
        return None
    unpacked = subprocess.run(["dpkg-deb", "--fsys-tarfile", debs[0]], capture_output=True)
    if unpacked.returncode != 0:
        return None
    with tarfile.open(fileobj=io.BytesIO(unpacked.stdout)) as tar:
        return next((m.mtime for m in tar if m.name.removeprefix("./").rstrip("/") == path.strip("/")), None)


def _restore_dev_time() -> None:
    """Give /dev its package's time when the engine could not create device nodes.

    In a user namespace (rootless Podman) mknod fails, so mmdebstrap creates and removes
    /dev entries around each chroot step and maintainer scripts' `>/dev/null` leaves regular
    files there: /dev ends up with the build's time. Where mknod works (Docker) mmdebstrap
    fills /dev before unpacking and /dev keeps the time its package ships. Only /dev's own
    time reaches the tar (its contents are excluded), so restoring it makes both engines
    write the same tar; where /dev/null is a real device nothing is touched.
    """
    dev = ROOT / "dev"
    if (dev / "null").is_char_device() or not dev.is_dir():
        return
    mtime = _shipped_mtime("/dev")
    if mtime is not None:
        os.utime(dev, (mtime, mtime), follow_symlinks=False)
        log("no device nodes (user namespace): /dev gets its package's time back")


def _empty_apparmor_locals() -> None:
    """Empty the AppArmor local includes that postinst scripts made from /dev/null.

    dh_apparmor's postinst snippet creates /etc/apparmor.d/local/<profile> with
    `install /dev/null ...`. In a user namespace (rootless Podman) /dev/null inside the
    root is a regular file that earlier scripts' `>/dev/null` wrote into (isc-dhcp-client's
    came out holding "/usr/sbin/setcap"), so the copy is not empty as it is where
    /dev/null is a device (Docker). No package ships these files; empty is what they are.
    """
    if (ROOT / "dev/null").is_char_device():
        return
    for path in sorted((ROOT / "etc/apparmor.d/local").glob("*")):
        if path.is_file() and not path.is_symlink() and path.stat().st_size:
            times = path.stat()
            path.write_bytes(b"")
            os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
            log(f"no device nodes (user namespace): {path.relative_to(ROOT)} emptied, as /dev/null would have")


def execute(request: StageRequest, out: Path) -> Outcome:
    resolve = Path(request.inputs["resolve"])
    lock = json.loads((resolve / "lock.json").read_text())
    options = request.options
    _flat_repository(resolve / "debs")
    _install(lock, options.get("suite", "bookworm"))
    epoch = request.source_date_epoch
    deleted = apply_description(ROOT, options, epoch, lambda: configure_root(ROOT, options, lock, epoch))
    packages_file = _write_packages(out)
    _check_installed(lock, packages_file, deleted)
    write_package_info(ROOT, out)
    write_verified(ROOT, out)
    _empty_apparmor_locals()
    scrub_root(ROOT, request.source_date_epoch)
    _restore_dev_time()
    _write_tar(out, request.source_date_epoch)
    shutil.rmtree(ROOT, ignore_errors=True)
    log(f"root tar: {(out / 'root.tar').stat().st_size // (1 << 20)} MiB")
    return Outcome(tools=package_version("mmdebstrap", "apt", "dpkg", "tar"))
