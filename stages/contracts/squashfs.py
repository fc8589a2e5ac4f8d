"""squashfs: the root tar as the live medium's root image, in the layout the description asks for.

KIWI's iso `filesystem` attribute picks the layout (RootFilesystem); the stage keeps its
name after the default, the root directly in LiveOS/squashfs.img.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from liveorch.stages.contract import UNPRIVILEGED_UID, Output, StageSpec

SQUASHFS_IMAGE = "LiveOS/squashfs.img"
# filesystem="erofs": the EROFS root straight on the medium; filesystem="ext4": the same
# name inside LiveOS/squashfs.img. Both are where dracut's dmsquash-live looks.
ROOT_IMAGE = "LiveOS/rootfs.img"


class Compression(enum.StrEnum):
    """KIWI's squashfscompression values (tar2sqfs's compressor names)."""

    XZ = "xz"
    ZSTD = "zstd"
    LZ4 = "lz4"
    GZIP = "gzip"
    LZO = "lzo"


class RootFilesystem(enum.StrEnum):
    """KIWI's iso filesystem values liveorch builds, and what each puts on the medium."""

    SQUASHFS = "squashfs"  # LiveOS/squashfs.img is the root (overlayfs on top)
    EXT4 = "ext4"  # LiveOS/squashfs.img holds LiveOS/rootfs.img (a device-mapper snapshot on top)
    XFS = "xfs"  # as ext4, with an XFS rootfs.img
    EROFS = "erofs"  # LiveOS/rootfs.img is the root, an EROFS image (overlayfs on top)

    @property
    def in_squashfs(self) -> bool:
        """A filesystem image inside LiveOS/squashfs.img, which dmsquash-live snapshots."""
        return self in (RootFilesystem.EXT4, RootFilesystem.XFS)


class ErofsAlgorithm(enum.StrEnum):
    """mkfs.erofs -z compressors, named as KIWI's erofscompression and the kernel's
    CONFIG_EROFS_FS_ZIP_* options know them."""

    LZ4 = "lz4"
    LZ4HC = "lz4hc"
    LZMA = "lzma"
    DEFLATE = "deflate"
    ZSTD = "zstd"


@dataclass(frozen=True)
class ErofsCompression:
    """KIWI's erofscompression, e.g. "lz4hc,12" or "lzma": an algorithm and an optional level."""

    algorithm: ErofsAlgorithm
    level: int | None

    def __str__(self) -> str:
        return self.algorithm.value if self.level is None else f"{self.algorithm.value},{self.level}"


@dataclass(frozen=True)
class SquashfsOptions:
    """`compression`: the squashfs compressor (squashfs and ext4 layouts); `erofs`: the EROFS
    compression (erofs layout only, None otherwise)."""

    filesystem: RootFilesystem
    compression: Compression
    erofs: ErofsCompression | None


SPEC = StageSpec(
    name="squashfs",
    summary="the root image from the root tar (tar2sqfs, mke2fs -d, mkfs.erofs --tar, mkfs.xfs -p): no mounts, "
            "no privileges",
    options=SquashfsOptions,
    inputs=("rootfs",),
    outputs=(Output(SQUASHFS_IMAGE, optional=True), Output(ROOT_IMAGE, optional=True)),
    capabilities=(),
    user=UNPRIVILEGED_UID,
    # The longest stage after the root, beside initrd: it gets every core.
    cpu_weight=4,
)
