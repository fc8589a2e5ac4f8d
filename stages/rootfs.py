"""rootfs: exactly the locked packages installed into a root, configured, as a deterministic tar.

mmdebstrap installs from a flat repository made of the resolved .debs (a copy:// source),
so the container needs no network and apt cannot pick anything the lock does not list.
Configuration (users, locale, time zone, hostname, consoles) happens on the tree; the
few commands that must run inside it go through chroot, which Docker's default
capabilities allow. Every .deb is checked against the lock's sha256 before it is used,
and the description payload against the sha256 the plan gave. The description's archives,
root/ overlay and hooks are applied in KIWI's order (stages/hooks.py). Everything that
would make two builds differ (logs, caches, machine-id, backup files, password change
dates) is removed or pinned before the tar is written with sorted names, numeric owners
and clamped times.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from liveorch.stages.configure_root import configure_root, scrub_root
from liveorch.stages.contract import Outcome, StageRequest, Workspace, decode
from liveorch.stages.contracts.resolve import DEBS, LOCK, Lock, deb_name
from liveorch.stages.contracts.rootfs import PACKAGES, PAYLOAD_FILE, ROOT_TAR, RootfsOptions
from liveorch.stages.hooks import apply_description
from liveorch.stages.package_info import write_package_info, write_verified
from liveorch.stages.tools import StageError, capture, fresh_dir, log, package_version, run, sha256_file

# Left empty in the image: the kernel and systemd fill them at boot.
EMPTY_DIRS = ("dev", "proc", "sys", "run", "tmp")


def flat_repository(lock: Lock, debs: Path, repo: Path, suite: str) -> None:
    """A copy:// repository of exactly the locked .debs, each checked against the lock's
    sha256 first: apt installs from it as trusted, so nothing unchecked may be in it. Its
    Release names the description's suite: mmdebstrap (1.4 and later) takes the essential
    set only from an archive whose suite or codename is the one it is asked for."""
    fresh_dir(repo)
    for package in lock.packages:
        deb = debs / deb_name(package)
        if not deb.is_file() or sha256_file(deb) != package.sha256:
            raise StageError(f"{deb_name(package)} does not match the lock's sha256 {package.sha256}")
        (repo / deb.name).symlink_to(deb)
    with (repo / "Packages").open("w") as packages:
        run(["apt-ftparchive", "packages", "."], cwd=repo, stdout=packages, what="apt-ftparchive packages")
    with (repo / "Release").open("w") as release:
        run(["apt-ftparchive", "-o", f"APT::FTPArchive::Release::Suite={suite}",
             "-o", f"APT::FTPArchive::Release::Codename={suite}", "release", "."],
            cwd=repo, stdout=release, what="apt-ftparchive release")


def mmdebstrap_argv(lock: Lock, suite: str, root: Path, repo: Path) -> list[str]:
    return [
        "mmdebstrap",
        "--mode=root",
        "--variant=apt",
        "--format=directory",
        f"--architectures={lock.architecture}",
        "--include=" + ",".join(p.name for p in lock.packages),
        "--aptopt=Acquire::Languages \"none\"",
        suite,
        str(root),
        f"deb [trusted=yes] copy://{repo} ./",
    ]


def _check_installed(lock: Lock, packages_file: Path, deleted: tuple[str, ...]) -> None:
    """The root must hold exactly the locked packages (less the deleted ones), no more and no fewer."""
    installed = {line.split("|")[0]: line.split("|")[2] for line in packages_file.read_text().splitlines()}
    locked = {p.name: p.version for p in lock.packages if p.name not in deleted}
    if installed != locked:
        extra = sorted(set(installed) - set(locked))
        missing = sorted(set(locked) - set(installed))
        raise StageError(f"installed packages differ from the lock: extra {extra}, missing {missing}")


def _write_packages(root: Path, out: Path) -> Path:
    """KIWI's .packages format: name|None|version|None|arch|None|None, sorted."""
    text = capture(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W",
                    "-f=${Package}|None|${Version}|None|${Architecture}|None|None\\n"])
    target = out / PACKAGES
    target.write_text("".join(sorted(line + "\n" for line in text.splitlines() if line)))
    return target


def tar_argv(root: Path, target: Path, epoch: int) -> list[str | Path]:
    """Sorted names, numeric owners, clamped times, only file capabilities as xattrs: the
    same root gives the same bytes."""
    excludes = [f"--exclude=./{d}/*" for d in EMPTY_DIRS]
    return [
        "tar",
        "--create",
        "--file", target,
        "--directory", root,
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
    ]


def _shipped_mtime(root: Path, repo: Path, path: str) -> int | None:
    """The mtime the package owning `path` gives it, read from that package's .deb."""
    query = subprocess.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "--search", path],
                           capture_output=True, text=True)
    lines = query.stdout.splitlines() if query.returncode == 0 else []
    owner = lines[0].rsplit(": ", 1)[0].split(", ")[0].split(":")[0] if lines else ""
    debs = sorted(repo.glob(f"{owner}_*.deb")) if owner else []
    if not debs:
        return None
    unpacked = subprocess.run(["dpkg-deb", "--fsys-tarfile", debs[0]], capture_output=True)
    if unpacked.returncode != 0:
        return None
    with tarfile.open(fileobj=io.BytesIO(unpacked.stdout)) as tar:
        return next((m.mtime for m in tar if m.name.removeprefix("./").rstrip("/") == path.strip("/")), None)


def _restore_dev_time(root: Path, repo: Path) -> None:
    """Give /dev its package's time when the engine could not create device nodes.

    In a user namespace (rootless Podman) mknod fails, so mmdebstrap creates and removes
    /dev entries around each chroot step and maintainer scripts' `>/dev/null` leaves regular
    files there: /dev ends up with the build's time. Where mknod works (Docker) mmdebstrap
    fills /dev before unpacking and /dev keeps the time its package ships. Only /dev's own
    time reaches the tar (its contents are excluded), so restoring it makes both engines
    write the same tar; where /dev/null is a real device nothing is touched.
    """
    dev = root / "dev"
    if (dev / "null").is_char_device() or not dev.is_dir():
        return
    mtime = _shipped_mtime(root, repo, "/dev")
    if mtime is not None:
        os.utime(dev, (mtime, mtime), follow_symlinks=False)
        log("no device nodes (user namespace): /dev gets its package's time back")


def _empty_apparmor_locals(root: Path) -> None:
    """Empty the AppArmor local includes that postinst scripts made from /dev/null.

    dh_apparmor's postinst snippet creates /etc/apparmor.d/local/<profile> with
    `install /dev/null ...`. In a user namespace (rootless Podman) /dev/null inside the
    root is a regular file that earlier scripts' `>/dev/null` wrote into (isc-dhcp-client's
    came out holding "/usr/sbin/setcap"), so the copy is not empty as it is where
    /dev/null is a device (Docker). No package ships these files; empty is what they are.
    """
    if (root / "dev/null").is_char_device():
        return
    for path in sorted((root / "etc/apparmor.d/local").glob("*")):
        if path.is_file() and not path.is_symlink() and path.stat().st_size:
            times = path.stat()
            path.write_bytes(b"")
            os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
            log(f"no device nodes (user namespace): {path.relative_to(root)} emptied, as /dev/null would have")


def _payload(workspace: Workspace, options: RootfsOptions) -> Path | None:
    """The description's files, checked against the sha256 the plan computed on the host."""
    if options.payload_sha256 is None:
        return None
    payload = workspace.files / PAYLOAD_FILE
    if not payload.is_file() or sha256_file(payload) != options.payload_sha256:
        raise StageError("the description payload is missing or not the one the plan hashed")
    return payload


def execute(request: StageRequest, workspace: Workspace) -> Outcome:
    options: RootfsOptions = request.options
    resolve = workspace.input(request, "resolve")
    lock = decode(Lock, json.loads((resolve / LOCK).read_text()), "lock")
    root, repo, out = workspace.tmp / "root", workspace.tmp / "repo", workspace.out
    epoch = request.source_date_epoch
    flat_repository(lock, resolve / DEBS, repo, options.suite)
    shutil.rmtree(root, ignore_errors=True)
    run(mmdebstrap_argv(lock, options.suite, root, repo), what="mmdebstrap",
        env={**os.environ, "INITRD": "No", "DEBIAN_FRONTEND": "noninteractive"})
    deleted = apply_description(root, workspace.tmp, _payload(workspace, options), options, epoch,
                                lambda: configure_root(root, options, epoch))
    packages_file = _write_packages(root, out)
    _check_installed(lock, packages_file, deleted)
    write_package_info(root, out)
    write_verified(root, out)
    _empty_apparmor_locals(root)
    scrub_root(root, epoch)
    _restore_dev_time(root, repo)
    run(tar_argv(root, out / ROOT_TAR, epoch), what="tar")
    shutil.rmtree(root, ignore_errors=True)
    log(f"root tar: {(out / ROOT_TAR).stat().st_size // (1 << 20)} MiB")
    return Outcome(tools=package_version("mmdebstrap", "apt", "dpkg", "tar"))
