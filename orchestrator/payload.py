"""The description's files for the rootfs stage (root/ overlay, config.sh, images.sh,
archives) as one deterministic tar, handed to that stage's run alone; the plan keeps its
sha256, which the stage checks and the cache key covers.

Checked on the host before anything runs: only regular files, directories and symlinks
(kept as links, never followed, so a link cannot pull host files in), and no file over
the size limit. config.sh and images.sh must be regular files; archives must resolve inside
the description directory (no symlinked directory or file on the way may lead out of it), so
a description cannot read host files from outside its own directory. Names are sorted and
owners and times fixed, so the same description gives the same bytes, and so the same cache
key, on any checkout.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from liveorch.orchestrator.description import Description, escape_from
from liveorch.orchestrator.errors import DescriptionError

MAX_FILE_BYTES = 2 << 30


@dataclass
class Payload:
    file: IO[bytes]
    sha256: str
    entries: int


def _archive_file(description: Description, name: str) -> Path:
    """The archive's real path, which must lie inside the description directory (checked again
    here, not only when parsing: a Description can be made or its directory changed since)."""
    candidate = PurePosixPath(name)
    if not name or candidate.is_absolute() or ".." in candidate.parts:
        raise DescriptionError(f"<archive name={name!r}> must name a file in the description directory",
                               description.path)
    reason = escape_from(description.directory, name)
    if reason is not None:
        raise DescriptionError(f"archive {name} resolves outside the description directory ({reason})",
                               description.path)
    return Path(os.path.realpath(description.directory / name))


def _entries(description: Description) -> list[tuple[str, Path]]:
    """(name in the payload, file on the host), sorted. Archives are taken at their real path
    (a symlink inside the description directory is followed, one leading out is refused); the
    overlay is walked without following any symlink."""
    base = description.directory
    found: list[tuple[str, Path]] = [(name, base / name) for name in description.hooks]
    found += [(f"archives/{name}", _archive_file(description, name)) for name in description.archives]
    overlay = description.overlay
    if overlay is not None:
        found.append(("root", overlay))
        for directory, dirs, files in os.walk(overlay, followlinks=False):
            dirs.sort()
            for name in sorted(dirs + files):
                path = Path(directory) / name
                found.append((f"root/{path.relative_to(overlay).as_posix()}", path))
    return sorted(found)


def _check(name: str, path: Path, description: Description) -> os.stat_result:
    info = path.lstat()
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        raise DescriptionError(f"{name}: device files, pipes and sockets cannot be part of a description",
                               description.path)
    if stat.S_ISREG(info.st_mode) and info.st_size > MAX_FILE_BYTES:
        raise DescriptionError(f"{name}: larger than {MAX_FILE_BYTES >> 30} GiB", description.path)
    if (name in description.hooks or name.startswith("archives/")) and not stat.S_ISREG(info.st_mode):
        link = f", not a symlink ({name} -> {os.readlink(path)})" if stat.S_ISLNK(info.st_mode) else ""
        raise DescriptionError(f"{name} must be a regular file{link}", description.path)
    return info


def _open_checked(name: str, path: Path, info: os.stat_result, description: Description) -> IO[bytes]:
    """Open a file _check looked at, without following a symlink, and make sure it is still that
    same regular file (a swap in between would otherwise read whatever took its place)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise DescriptionError(f"{name}: cannot read: {error.strerror}", description.path) from None
    opened = os.fstat(descriptor)
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
        os.close(descriptor)
        raise DescriptionError(f"{name}: changed while the description was being read", description.path)
    return os.fdopen(descriptor, "rb")


def make_payload(description: Description) -> Payload | None:
    entries = _entries(description)
    if not entries:
        return None
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - handed to the caller, who closes it
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in entries:
            info = _check(name, path, description)
            member = tarfile.TarInfo(name)
            member.mode = stat.S_IMODE(info.st_mode)
            member.uid = member.gid = 0
            member.uname = member.gname = "root"
            member.mtime = 0
            if stat.S_ISDIR(info.st_mode):
                member.type = tarfile.DIRTYPE
                tar.addfile(member)
            elif stat.S_ISLNK(info.st_mode):
                member.type = tarfile.SYMTYPE
                member.linkname = os.readlink(path)
                tar.addfile(member)
            else:
                member.size = info.st_size
                with _open_checked(name, path, info, description) as handle:
                    tar.addfile(member, handle)
    spool.seek(0)
    digest = hashlib.sha256()
    while block := spool.read(1 << 20):
        digest.update(block)
    spool.seek(0)
    return Payload(spool, digest.hexdigest(), len(entries))
