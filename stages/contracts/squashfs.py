"""squashfs: the root tar as LiveOS/squashfs.img, read straight from the tar."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from liveorch.stages.contract import UNPRIVILEGED_UID, Output, StageSpec

SQUASHFS_IMAGE = "LiveOS/squashfs.img"


class Compression(enum.StrEnum):
    """KIWI's squashfscompression values (tar2sqfs's compressor names)."""

    XZ = "xz"
    ZSTD = "zstd"
    LZ4 = "lz4"
    GZIP = "gzip"
    LZO = "lzo"


@dataclass(frozen=True)
class SquashfsOptions:
    compression: Compression


SPEC = StageSpec(
    name="squashfs",
    summary="tar2sqfs reads the root tar, owners from its headers: no unpacking, no privileges",
    options=SquashfsOptions,
    inputs=("rootfs",),
    outputs=(Output(SQUASHFS_IMAGE),),
    capabilities=(),
    user=UNPRIVILEGED_UID,
)
