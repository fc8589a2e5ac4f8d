"""The description's own contributions to the root, in KIWI's order: archives, the root/
overlay, then (after the system settings) config.sh, package deletion and images.sh.

The description arrives as one tar (the "payload") made by the orchestrator. Overlay and
archives are unpacked by the image's own tar inside the root (chroot), so the image's
symlinks (/lib -> usr/lib) are followed as on the booted system. Hooks run inside the root
with KIWI's /.kconfig helpers and /.profile variables, under a timeout, and their output
goes to the stage log so a failure shows the hook's last lines.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from liveorch.stages.contracts.rootfs import RootfsOptions
from liveorch.stages.limits import LimitEvents
from liveorch.stages.tools import StageError, fresh_dir, log, run

HOOK_DIR = "image"

# KIWI's helper functions that descriptions' hooks call, mapped onto systemd and dpkg.
KCONFIG = r"""# liveorch's /.kconfig: the KIWI helper functions config.sh and images.sh may call.
Debug() { [ -n "${DEBUG:-}" ] && echo "+++++> $*"; return 0; }
Echo() { echo "$@"; }
baseInsertService() { systemctl enable "$1"; }
baseRemoveService() { systemctl disable "$1"; }
baseService() { if [ "$2" = "on" ] || [ "$2" = "yes" ]; then baseInsertService "$1"; else baseRemoveService "$1"; fi; }
suseInsertService() { baseInsertService "$@"; }
suseRemoveService() { baseRemoveService "$@"; }
suseService() { baseService "$@"; }
suseActivateDefaultServices() { :; }
baseSetRunlevel() {
    case "$1" in
        1) target=rescue.target ;;
        2|3|4) target=multi-user.target ;;
        5) target=graphical.target ;;
        *) target="$1" ;;
    esac
    systemctl set-default "$target"
}
baseCleanMount() { :; }
suseConfig() { :; }
baseStripDocs() { rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/*; }
baseStripLocales() {
    keep="$*"
    for dir in /usr/share/locale/*; do
        name=$(basename "$dir"); case " $keep " in *" $name "*) ;; *) rm -rf "$dir" ;; esac
    done
}
baseUpdateSysConfig() { :; }
"""


def unpack_payload(payload: Path, files: Path) -> None:
    """Unpack the description payload; the orchestrator made it, but check names anyway."""
    fresh_dir(files)
    with tarfile.open(payload) as tar:
        for member in tar.getmembers():
            path = PurePosixPath(member.name)
            if path.is_absolute() or ".." in path.parts:
                raise StageError(f"unsafe name in the description payload: {member.name}")
            if not (member.isfile() or member.isdir() or member.issym()):
                raise StageError(f"{member.name}: only files, directories and symlinks may come from a description")
        tar.extractall(files, numeric_owner=True)


def _unpack_into_root(root: Path, archive: Path, what: str) -> None:
    """Unpack with the image's own tar inside the image, keeping owners and the image's dir symlinks."""
    inside = root / "tmp" / f"liveorch-{archive.name}"
    shutil.copyfile(archive, inside)
    try:
        run(["chroot", root, "tar", "--extract", "--file", f"/tmp/{inside.name}", "--directory", "/",
             "--keep-directory-symlink", "--no-overwrite-dir", "--same-owner", "--numeric-owner",
             "--preserve-permissions"], what=what)
    finally:
        inside.unlink(missing_ok=True)


def apply_archives(root: Path, files: Path, archives: tuple[str, ...]) -> None:
    for name in archives:
        _unpack_into_root(root, files / "archives" / name, f"unpacking archive {name}")
        log(f"archive {name} unpacked into the root")


def apply_overlay(root: Path, files: Path, epoch: int) -> None:
    overlay = files / "root"
    if not overlay.is_dir():
        return
    bundle = files.parent / "overlay.tar"
    names = []
    with tarfile.open(bundle, "w") as tar:
        for path in sorted(overlay.rglob("*")):
            relative = path.relative_to(overlay).as_posix()
            names.append(relative)
            info = tar.gettarinfo(str(path), arcname=relative)
            # KIWI's rule: overlay files belong to root; checkout times are not content.
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = epoch
            if info.isfile():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    _unpack_into_root(root, bundle, "copying the root/ overlay")
    bundle.unlink()
    log(f"root/ overlay: {len(names)} entries copied")


def write_profile(root: Path, variables: dict[str, str]) -> None:
    text = "".join(f"{name}={shlex.quote(str(value))}\n" for name, value in sorted(variables.items()))
    (root / ".profile").write_text(text)
    (root / ".kconfig").write_text(KCONFIG)


def _interpreter(root: Path, script: Path) -> str | None:
    first = script.read_bytes()[:256].split(b"\n", 1)[0]
    if first.startswith(b"#!"):
        words = first[2:].decode(errors="replace").split()
        return words[0] if words else None
    return None


def run_hook(root: Path, files: Path, name: str, timeout: int) -> None:
    """Run config.sh or images.sh inside the root; fail with its last lines, on timeout, or
    when it ran into the container's memory or process limit (even if it exited 0)."""
    script = files / name
    if not script.is_file():
        return
    target = root / HOOK_DIR / name
    target.parent.mkdir(exist_ok=True)
    shutil.copy2(script, target)
    if os.access(script, os.X_OK):
        interpreter = _interpreter(root, script)
        if interpreter and not (root / interpreter.lstrip("/")).exists():
            raise StageError(f"{name}: its interpreter {interpreter} is not in the image (add the package "
                             "that provides it)")
        argv = [f"/{HOOK_DIR}/{name}"]
    else:
        log(f"warning: {name} is not executable: running it with bash, as KIWI does")
        argv = ["/bin/bash", f"/{HOOK_DIR}/{name}"]
    log(f"running {name} (timeout {timeout} s)")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "0"), "DEBIAN_FRONTEND": "noninteractive"}
    before = LimitEvents.read()
    process = subprocess.Popen(["chroot", str(root), "/bin/sh", "-c", 'cd / && exec "$@"', name, *argv],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    try:
        assert process.stdout is not None
        _relay(process, lines, timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise StageError(f"{name} did not finish within {timeout} s (--hook-timeout)") from None
    finally:
        _kill_group(process.pid)
    cause = LimitEvents.read().cause_since(before)
    if cause:
        raise StageError(f"{name}: {cause}")
    if process.returncode != 0:
        last = next((ln for ln in reversed(lines) if ln.strip()), "no output")
        raise StageError(f"{name} failed with exit code {process.returncode}: {last}")


def _kill_group(group: int) -> None:
    """Whatever the hook left running in the background goes with it; a fork bomb can fork
    between two signals, so the group is signalled until it is empty."""
    for _ in range(100):
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def _relay(process: subprocess.Popen[bytes], lines: list[str], timeout: int) -> None:
    """Copy the hook's output to the stage log, enforcing the timeout even while it is silent."""
    import selectors

    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    pending = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise subprocess.TimeoutExpired(process.args, timeout)
        if not selector.select(timeout=min(remaining, 1.0)):
            continue
        chunk = os.read(process.stdout.fileno(), 65536)
        if not chunk:
            break
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            line = raw.decode(errors="replace")
            lines.append(line)
            log(f"  | {line}")
    process.wait(timeout=max(deadline - time.monotonic(), 1))


def delete_packages(root: Path, names: tuple[str, ...]) -> None:
    installed = {p.name.removesuffix(".list") for p in (root / "var/lib/dpkg/info").glob("*.list")}
    present = [n for n in names if n in installed]
    for missing in sorted(set(names) - set(present)):
        log(f"warning: delete package {missing} is not installed")
    if present:
        run(["chroot", root, "dpkg", "--purge", "--force-all", *present], what="deleting packages")


def remove_hook_files(root: Path) -> None:
    shutil.rmtree(root / HOOK_DIR, ignore_errors=True)
    for name in (".kconfig", ".profile"):
        (root / name).unlink(missing_ok=True)


def apply_description(root: Path, tmp: Path, payload: Path | None, options: RootfsOptions, epoch: int,
                      settings: Callable[[], None]) -> tuple[str, ...]:
    """Everything the description brings, around `settings()` (users, locale, ...), in KIWI's order.
    Returns the packages that were deleted."""
    files = tmp / "description"
    if payload is not None:
        unpack_payload(payload, files)
        apply_archives(root, files, options.archives)
        apply_overlay(root, files, epoch)
    settings()
    if payload is not None:
        write_profile(root, options.profile)
        run_hook(root, files, "config.sh", options.hook_timeout)
    delete_packages(root, options.delete_packages)
    if payload is not None:
        run_hook(root, files, "images.sh", options.hook_timeout)
        remove_hook_files(root)
    return options.delete_packages
