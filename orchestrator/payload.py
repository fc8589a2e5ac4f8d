"""The description's files for the rootfs stage (root/ overlay, config.sh, images.sh,
archives) as one deterministic tar, content-addressed in the artifact volume.

Checked on the host before anything runs: only regular files, directories and symlinks
(kept as links, never followed, so a link cannot pull host files in), and no file over
the size limit. Names are sorted and owners and times fixed, so the same description gives
the same bytes, and so the same cache key, on any checkout.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from liveorch.orchestrator.description import Description
from liveorch.orchestrator.errors import DescriptionError

MAX_FILE_BYTES = 2 << 30


@dataclass
class Payload:
    file: IO[bytes]
    sha256: str
    entries: int

    @property
    def volume_dir(self) -> str:
        return f"description/{self.sha256}"


def _entries(description: Description) -> list[tuple[str, Path]]:
    """(name in the payload, file on the host), sorted."""
    base = description.directory
    found: list[tuple[str, Path]] = [(name, base / name) for name in description.hooks]
    found += [(f"archives/{name}", base / name) for name in description.archives]
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
    if name in description.hooks and not stat.S_ISREG(info.st_mode):
        raise DescriptionError(f"{name} must be a regular file", description.path)
    return info


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
                with path.open("rb") as handle:
                    tar.addfile(member, handle)
    spool.seek(0)
    digest = hashlib.sha256()
    while block := spool.read(1 << 20):
        digest.update(block)
    spool.seek(0)
    return Payload(spool, digest.hexdigest(), len(entries))
