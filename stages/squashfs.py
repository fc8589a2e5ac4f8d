"""squashfs: the root tar becomes the live root image, read straight from the tar.

tar2sqfs, mke2fs -d and mkfs.erofs --tar take owners, modes, times and file capabilities
from the tar headers, so the stage runs as an unprivileged user and never unpacks the
root. The tar is already sorted with clamped times, which is what makes the image's bytes
repeatable. The layouts (RootFilesystem):
- squashfs: the tar into LiveOS/squashfs.img;
- ext4: the tar into an ext4 LiveOS/rootfs.img, which goes into LiveOS/squashfs.img;
- erofs: the tar into an EROFS LiveOS/rootfs.img, once the image's kernel is known to read it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from liveorch.stages.contract import Outcome, StageRequest, Workspace
from liveorch.stages.contracts.rootfs import ROOT_TAR
from liveorch.stages.contracts.squashfs import (
    ROOT_IMAGE,
    SQUASHFS_IMAGE,
    Compression,
    RootFilesystem,
    SquashfsOptions,
)
from liveorch.stages.root_image import (
    check_erofs_support,
    erofs_argv,
    ext4_geometry,
    kernel_config,
    mke2fs_argv,
    volume_uuid,
)
from liveorch.stages.tools import fresh_dir, log, package_version, run


def _packer_options(compression: Compression, epoch: int, image: Path, jobs: int) -> list[str | Path]:
    """What tar2sqfs and gensquashfs (both squashfs-tools-ng) share."""
    return ["--compressor", compression.value, "--num-jobs", str(jobs), "--defaults", f"mtime={epoch}",
            "--quiet", "--force", image]


def tar2sqfs_argv(compression: Compression, epoch: int, image: Path, jobs: int) -> list[str | Path]:
    return ["tar2sqfs", *_packer_options(compression, epoch, image, jobs)]


def gensquashfs_argv(compression: Compression, epoch: int, pack_file: Path, image: Path, jobs: int
                     ) -> list[str | Path]:
    """The ext4 image into a squashfs as LiveOS/rootfs.img, read in place (no copy into a tar)."""
    return ["gensquashfs", "--pack-file", pack_file, *_packer_options(compression, epoch, image, jobs)]


def pack_file(ext4: Path) -> str:
    """gensquashfs's listing: the LiveOS directory and the image in it, both owned by root."""
    return f"dir /LiveOS 0755 0 0\nfile /{ROOT_IMAGE} 0644 0 0 {ext4}\n"


def _squash(stream: IO[bytes], compression: Compression, epoch: int, image: Path) -> None:
    run(tar2sqfs_argv(compression, epoch, image, os.cpu_count() or 1), stdin=stream, what="tar2sqfs")


def _ext4_in_squashfs(root_tar: Path, options: SquashfsOptions, epoch: int, volume: str, workspace: Workspace
                      ) -> Path:
    size, inodes = ext4_geometry(root_tar)
    ext4 = workspace.tmp / "rootfs.img"
    run(mke2fs_argv(root_tar, ext4, volume, size, inodes), env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
        what="mke2fs")
    log(f"ext4 root: {size >> 20} MiB, {inodes} inodes")
    image = workspace.out / SQUASHFS_IMAGE
    fresh_dir(image.parent)
    listing = workspace.tmp / "pack.txt"
    listing.write_text(pack_file(ext4))
    run(gensquashfs_argv(options.compression, epoch, listing, image, os.cpu_count() or 1), what="gensquashfs")
    ext4.unlink()
    return image


def _erofs(root_tar: Path, options: SquashfsOptions, epoch: int, volume: str, workspace: Workspace) -> Path:
    assert options.erofs is not None  # the contract pairs filesystem=erofs with a compression
    check_erofs_support(kernel_config(root_tar), options.erofs)
    image = workspace.out / ROOT_IMAGE
    fresh_dir(image.parent)
    run(erofs_argv(root_tar, image, volume, options.erofs, epoch), what="mkfs.erofs")
    return image


def execute(request: StageRequest, workspace: Workspace) -> Outcome:
    options: SquashfsOptions = request.options
    epoch = request.source_date_epoch
    root_tar = workspace.input(request, "rootfs") / ROOT_TAR
    volume = volume_uuid(request.inputs["rootfs"], options.filesystem.value)
    if options.filesystem is RootFilesystem.EXT4:
        image = _ext4_in_squashfs(root_tar, options, epoch, volume, workspace)
    elif options.filesystem is RootFilesystem.EROFS:
        image = _erofs(root_tar, options, epoch, volume, workspace)
    else:
        image = workspace.out / SQUASHFS_IMAGE
        fresh_dir(image.parent)
        with root_tar.open("rb") as tar:
            _squash(tar, options.compression, epoch, image)
    compressed = options.erofs if options.filesystem is RootFilesystem.EROFS else options.compression.value
    log(f"{image.name} ({options.filesystem.value}, {compressed}): {image.stat().st_size // (1 << 20)} MiB")
    return Outcome(tools=package_version("squashfs-tools-ng", "e2fsprogs", "erofs-utils"),
                   facts={"filesystem": options.filesystem.value, "uuid": volume})
