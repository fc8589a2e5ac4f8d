"""Files in and out of volumes through a container's archive API.

The engine has no file API for volumes, but it can read and write any container's
filesystem as a tar stream, stopped containers included: liveorch uses containers that are
created and never started ("probes"), so no helper process runs and the same calls work
against a remote or rootless engine (Podman's Docker API included). Nothing is held in
memory whole: big files stream through in chunks.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import docker
import docker.errors

from liveorch.orchestrator.errors import EngineError
from liveorch.orchestrator.target_files import atomic_writer

CHUNK = 1 << 20


class _StreamReader(io.RawIOBase):
    """A file object over the engine's chunked archive stream, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


@dataclass(frozen=True)
class Entry:
    """One entry of a tree to write: a directory (data None) or a file, with its owner."""

    data: bytes | None = None
    uid: int = 0
    mode: int | None = None


def read_file(container: docker.models.containers.Container, path: PurePosixPath) -> bytes | None:
    """A small file's bytes, or None when it is not there."""
    try:
        chunks, _ = container.get_archive(str(path))
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BufferedReader(_StreamReader(iter(chunks))), mode="r|") as tar:
        for member in tar:
            handle = tar.extractfile(member)
            if handle is not None:
                return handle.read()
    return None


@contextmanager
def archive_for_engine(spool: IO[bytes]) -> Iterator[tarfile.TarFile]:
    """A tar written into `spool` for put_archive, ending right after its two end blocks.

    Python pads a tar to a 10 KiB record; Podman's copier stops reading at the end blocks
    and exits, so the padding still being sent meets a closed pipe and the whole put fails
    with a 500 ("passing bulk input to subprocess: write |1: broken pipe", buildah#6573),
    more often the busier the machine. Docker ignores the padding either way."""
    with tarfile.open(fileobj=spool, mode="w") as tar:
        yield tar
    spool.truncate(tar.offset)
    spool.seek(0)


def write_tree(container: docker.models.containers.Container, parent: PurePosixPath,
               entries: dict[str, Entry], files: dict[str, IO[bytes]] | None = None) -> None:
    """Create directories and files under `parent`, with the owners given (the engine keeps
    a tar's owners), plus open host files streamed in (spooled to disk, never read whole)."""
    with tempfile.TemporaryFile() as spool:
        with archive_for_engine(spool) as tar:
            for name, entry in entries.items():
                info = tarfile.TarInfo(name)
                info.mtime, info.uid, info.gid = int(time.time()), entry.uid, entry.uid
                if entry.data is None:
                    info.type, info.mode = tarfile.DIRTYPE, entry.mode or 0o755
                    tar.addfile(info)
                else:
                    info.size, info.mode = len(entry.data), entry.mode or 0o644
                    tar.addfile(info, io.BytesIO(entry.data))
            for name, source in (files or {}).items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = source.seek(0, 2), 0o644, int(time.time())
                source.seek(0)
                tar.addfile(info, source)
        if not container.put_archive(str(parent), spool):
            raise EngineError(f"could not write into the volume at {parent}")


def export_file(container: docker.models.containers.Container, path: PurePosixPath, target: Path,
                sha256: str | None = None) -> None:
    """Copy one file out to `target` (temp name, then rename; never through a symlink),
    checking its sha256 on the way when one is given."""
    try:
        chunks, _ = container.get_archive(str(path))
    except docker.errors.NotFound:
        raise EngineError(f"{path} is not in the volume") from None
    digest = hashlib.sha256()
    try:
        with tarfile.open(fileobj=io.BufferedReader(_StreamReader(iter(chunks)), CHUNK), mode="r|") as tar, \
                atomic_writer(target) as sink:
            member = next(iter(tar))
            source = tar.extractfile(member)
            if source is None:
                raise EngineError(f"{path} is not a file in the volume")
            while block := source.read(CHUNK):
                digest.update(block)
                sink.write(block)
            if sha256 and digest.hexdigest() != sha256:
                raise EngineError(f"{path} changed on its way out of the volume (sha256 mismatch)")
    except tarfile.TarError as error:
        raise EngineError(f"the engine sent a broken archive for {path}: {error}") from None
