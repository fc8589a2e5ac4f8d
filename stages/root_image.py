"""Filesystem images of the root made straight from the root tar, without mounts or privileges:
mke2fs -d reads the tar (e2fsprogs 1.47.1+), mkfs.erofs --tar reads it (erofs-utils 1.7+).

Both take owners, modes, times, device nodes and xattrs from the tar headers. Their UUIDs
(and ext4's directory hash seed) come from the stage's input key, their times from
SOURCE_DATE_EPOCH, so the same root gives the same bytes.
"""

from __future__ import annotations

import hashlib
import tarfile
import uuid
from pathlib import Path

from liveorch.stages.contracts.squashfs import ErofsAlgorithm, ErofsCompression
from liveorch.stages.kernel_config import parse_kernel_config
from liveorch.stages.tools import StageError

BLOCK = 4096
# Free room in the ext4 root for what the live system writes (the device-mapper snapshot
# can only change blocks the filesystem has): a quarter of the content, and 512 MiB more.
# Unused blocks are zeros, which squashfs stores as sparse blocks, so the ISO does not grow.
HEADROOM_RATIO = 1.25
HEADROOM_BYTES = 512 << 20
# The kernel options each EROFS compressor needs (lz4 and lz4hc are the base ZIP support).
EROFS_KERNEL_OPTIONS = {
    ErofsAlgorithm.LZ4: "CONFIG_EROFS_FS_ZIP",
    ErofsAlgorithm.LZ4HC: "CONFIG_EROFS_FS_ZIP",
    ErofsAlgorithm.LZMA: "CONFIG_EROFS_FS_ZIP_LZMA",
    ErofsAlgorithm.DEFLATE: "CONFIG_EROFS_FS_ZIP_DEFLATE",
    ErofsAlgorithm.ZSTD: "CONFIG_EROFS_FS_ZIP_ZSTD",
}


def volume_uuid(input_key: str, filesystem: str) -> str:
    """A UUID that changes exactly when the root or the layout does."""
    return str(uuid.UUID(bytes=hashlib.sha256(f"{input_key}\0{filesystem}".encode()).digest()[:16], version=4))


def ext4_geometry(root_tar: Path) -> tuple[int, int]:
    """(size in bytes, inode count) for the root: the tar's files in whole blocks, one inode
    per entry, plus headroom for both."""
    blocks, entries = 0, 0
    with tarfile.open(root_tar, mode="r:") as tar:
        for member in tar:
            entries += 1
            blocks += -(-member.size // BLOCK) if member.isfile() else 1
    size = int(blocks * BLOCK * HEADROOM_RATIO) + HEADROOM_BYTES
    size -= size % (1 << 20)
    return size, int(entries * HEADROOM_RATIO) + 8192


def mke2fs_argv(root_tar: Path, image: Path, volume: str, size: int, inodes: int) -> list[str | Path]:
    return [
        "mke2fs", "-q", "-F",
        "-t", "ext4",
        "-b", str(BLOCK),
        "-N", str(inodes),
        "-m", "0",  # no blocks reserved for root: the live system's free room is all usable
        "-L", "rootfs",
        "-U", volume,
        "-E", f"hash_seed={volume},root_owner=0:0",
        "-d", root_tar,
        image, f"{size // 1024}k",
    ]


def erofs_argv(root_tar: Path, image: Path, volume: str, compression: ErofsCompression, epoch: int
               ) -> list[str | Path]:
    return [
        "mkfs.erofs", "--quiet",
        f"-z{compression}",
        "-T", str(epoch),
        "-U", volume,
        "-L", "rootfs",
        "--tar=f",
        image, root_tar,
    ]


def kernel_config(root_tar: Path) -> dict[str, str]:
    """The image kernel's /boot/config-*: CONFIG_X -> y/m (options that are not set are absent)."""
    with tarfile.open(root_tar, mode="r:") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name.startswith("boot/config-") and member.isfile():
                text = tar.extractfile(member).read().decode(errors="replace")  # type: ignore[union-attr]
                return parse_kernel_config(text)
    raise StageError("the root has no /boot/config-*: cannot tell whether its kernel reads EROFS")


def check_erofs_support(config: dict[str, str], compression: ErofsCompression) -> None:
    """Refuse an EROFS root the image's own kernel could not mount or decompress."""
    if config.get("CONFIG_EROFS_FS") not in ("y", "m"):
        raise StageError("the image's kernel has no EROFS support (CONFIG_EROFS_FS): use filesystem=\"squashfs\"")
    option = EROFS_KERNEL_OPTIONS[compression.algorithm]
    if config.get(option) != "y":
        raise StageError(f"erofscompression=\"{compression}\": the image's kernel cannot decompress "
                         f"{compression.algorithm.value} ({option} is not set); use lz4hc")
