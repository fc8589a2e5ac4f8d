"""Writing results into the target directory without ever going through a symlink.

The target directory is not trusted: it may be shared (a world-writable, sticky scratch
directory) or prepared by someone else, who can plant a symlink at a name liveorch is about
to write (`out/x.iso -> ~/.bashrc`) or at a temporary name it might use. So:

- names that exist as symlinks are refused before a build starts (`check_target_names`) and
  again right before a result is put in place; liveorch neither follows nor replaces them;
- files are created under a fresh random temporary name with O_CREAT|O_EXCL|O_NOFOLLOW (an
  existing entry, symlink or not, makes the open fail instead of being written through)
  and renamed onto their final name, which replaces a directory entry and follows nothing;
- logs are new files per build, created the same way, so a rebuild keeps the previous log;
- directory bundles are filled in a fresh temporary directory and swapped in by rename;
- the directory written into must itself be a real directory, checked with lstat.

Files get mode 0644, directories 0755, whatever the umask.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TextIO

from liveorch.orchestrator.errors import TargetError

FILE_MODE = 0o644
DIRECTORY_MODE = 0o755
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
TEMPORARY_ATTEMPTS = 16
LOG_ATTEMPTS = 1000
SYMLINK_REFUSAL = "liveorch does not write through or replace symlinks in the target directory (remove it)"


def _symlink_error(path: Path) -> TargetError:
    return TargetError(f"{path} is a symlink: {SYMLINK_REFUSAL}")


def _require_real_directory(directory: Path) -> None:
    """The directory written into is a directory itself, not a symlink to one (lstat, never followed):
    a symlink there could be re-pointed between two writes."""
    try:
        info = directory.lstat()
    except FileNotFoundError:
        raise TargetError(f"{directory}: the target directory does not exist") from None
    except OSError as error:
        raise TargetError(f"{directory}: {error.strerror}") from None
    if stat.S_ISLNK(info.st_mode):
        raise TargetError(f"{directory} is a symlink: liveorch writes only into a real target directory",
                          hint=f"pass the directory it points to: {os.path.realpath(directory)}")
    if not stat.S_ISDIR(info.st_mode):
        raise TargetError(f"{directory} is not a directory")


def check_target_names(target: Path, names: Iterable[str]) -> None:
    """Refuse, before anything is built, a target directory that is a symlink or where any of
    the result names exists as a symlink. The symlink is left as it is: liveorch neither
    follows it (which would write wherever it points) nor replaces it (it is not ours)."""
    if os.path.lexists(target):
        _require_real_directory(target)
    for name in names:
        if (target / name).is_symlink():
            raise _symlink_error(target / name)


def _temporary_name(target: Path, kind: str) -> Path:
    """A hidden, random name beside target (`.<name>.<kind>-<random>`) that nobody can predict."""
    return target.parent / f".{target.name}.{kind}-{secrets.token_hex(8)}"


def open_partial(target: Path) -> tuple[Path, BinaryIO]:
    """Create a fresh temporary file beside target and open it for writing.

    O_EXCL|O_NOFOLLOW: if anything (a planted symlink included) already has the name, the open
    fails rather than writing through it; another random name is tried then."""
    _require_real_directory(target.parent)
    for _ in range(TEMPORARY_ATTEMPTS):
        partial = _temporary_name(target, "partial")
        try:
            descriptor = os.open(partial, CREATE_FLAGS, FILE_MODE)
        except FileExistsError:
            continue
        except OSError as error:
            raise TargetError(f"{partial}: cannot create: {error.strerror}") from None
        os.fchmod(descriptor, FILE_MODE)
        return partial, os.fdopen(descriptor, "wb")
    raise TargetError(f"{target.parent}: no free temporary name for {target.name}")


def publish_partial(partial: Path, target: Path) -> None:
    """Rename a finished temporary file onto its final name.

    os.replace swaps the directory entry and never follows a symlink at the final name, but a
    symlink found there is refused all the same (it is not liveorch's to replace). On any
    failure the temporary file is removed."""
    try:
        _require_real_directory(target.parent)
        if target.is_symlink():
            raise _symlink_error(target)
        try:
            os.replace(partial, target)
        except OSError as error:
            raise TargetError(f"{target}: cannot put the result in place: {error.strerror}") from None
    except BaseException:
        with suppress(OSError):
            partial.unlink()
        raise


@contextmanager
def atomic_writer(target: Path) -> Iterator[BinaryIO]:
    """Write target through a temporary file: on success it is renamed into place, on any
    exception it is removed and target is left as it was."""
    partial, handle = open_partial(target)
    try:
        with handle:
            yield handle
    except BaseException:
        with suppress(OSError):
            partial.unlink()
        raise
    publish_partial(partial, target)


def write_file_atomic(target: Path, data: bytes | str) -> None:
    """Write a whole file (str as UTF-8) so that it appears complete or not at all, never
    through a symlink."""
    with atomic_writer(target) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def open_new_log(target: Path, basename: str, now: datetime | None = None) -> tuple[Path, TextIO]:
    """A new log file in the directory target, `<basename>.<UTC %Y%m%dT%H%M%SZ>.log` (then
    `...Z-1.log`, `-2`, ... when taken), so a rebuild keeps the previous build's log.

    Created with O_EXCL|O_NOFOLLOW: an existing name, a planted symlink included, is skipped,
    never appended to or followed. The handle is line-buffered UTF-8."""
    _require_real_directory(target)
    moment = now or datetime.now(UTC)
    stamp = (moment if moment.tzinfo is None else moment.astimezone(UTC)).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(LOG_ATTEMPTS):
        suffix = f"-{attempt}" if attempt else ""
        path = target / f"{basename}.{stamp}{suffix}.log"
        try:
            descriptor = os.open(path, CREATE_FLAGS | os.O_APPEND, FILE_MODE)
        except FileExistsError:
            continue
        except OSError as error:
            raise TargetError(f"{path}: cannot create the log: {error.strerror}") from None
        os.fchmod(descriptor, FILE_MODE)
        return path, os.fdopen(descriptor, "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    raise TargetError(f"{target}: no free log name for {basename}.{stamp}.log")


def _existing_directory(target: Path) -> bool:
    """Whether target exists as a real directory; a symlink or another kind of file is refused."""
    try:
        info = target.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode):
        raise _symlink_error(target)
    if not stat.S_ISDIR(info.st_mode):
        raise TargetError(f"{target} exists and is not a directory: liveorch does not replace it (remove it)")
    return True


def _make_temporary_directory(target: Path) -> Path:
    for _ in range(TEMPORARY_ATTEMPTS):
        directory = _temporary_name(target, "partial")
        try:
            directory.mkdir(DIRECTORY_MODE)
        except FileExistsError:
            continue
        except OSError as error:
            raise TargetError(f"{directory}: cannot create: {error.strerror}") from None
        directory.chmod(DIRECTORY_MODE)
        return directory
    raise TargetError(f"{target.parent}: no free temporary name for {target.name}")


def _swap_in(fresh: Path, target: Path) -> None:
    """Move an existing target aside, rename fresh onto it, then delete the old one (rmtree
    removes symlinks inside it without following them). If a symlink or file appeared at
    target in between, the rename fails and the old directory is put back."""
    old = _temporary_name(target, "old") if _existing_directory(target) else None
    try:
        if old is not None:
            os.rename(target, old)
        os.rename(fresh, target)
    except OSError as error:
        kept = ""
        if old is not None and os.path.lexists(old):
            try:
                os.rename(old, target)
            except OSError:
                kept = f" (the previous one is kept as {old})"
        raise TargetError(f"{target}: cannot put the result in place: {error.strerror}{kept}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def replace_directory(target: Path, fill: Callable[[Path], None]) -> None:
    """Build a directory bundle (the network-boot `<name>.pxe/`) and put it at target.

    fill(directory) writes into a fresh temporary directory `.<name>.partial-<random>` beside
    target (created by liveorch, so nothing planted can be in it); then the new directory
    replaces target by rename. A symlink or non-directory at target is refused untouched. On
    any failure the temporary directory is removed and target is left as it was."""
    _require_real_directory(target.parent)
    _existing_directory(target)
    fresh = _make_temporary_directory(target)
    try:
        fill(fresh)
        _swap_in(fresh, target)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
