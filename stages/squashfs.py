"""squashfs: the root tar becomes the live root image, read straight from the tar.

tar2sqfs, mke2fs -d and mkfs.erofs --tar take owners, modes, times and file capabilities
from the tar headers, so the stage runs as an unprivileged user and never unpacks the
root. The tar is already sorted with clamped times, which is what makes the image's bytes
repeatable. The layouts (RootFilesystem):
- squashfs: the tar into LiveOS/squashfs.img;
- ext4: the tar into an ext4 LiveOS/rootfs.img, which goes into LiveOS/squashfs.img;
- xfs: the same with an XFS rootfs.img, made from a protofile (stages/xfs_image.py);
- erofs: the tar into an EROFS LiveOS/rootfs.img, once the image's kernel is known to read it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

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
from liveorch.stages.tools import Metered, fresh_dir, log, package_version, run
from liveorch.stages.xfs_image import (
    PROFILES,
    frozen_env,
    image_size,
    lts_profile,
    mkfs_xfs_argv,
    sticky_argv,
    xfs_tree,
)

# KIWI's block size (mksquashfs -b 1M). With xz, 1 MiB blocks at level 2 made the example's
# root 4 % smaller than 128 KiB blocks at xz's default level 6, in 38 % of the time (24.5 s
# against 64.7 s on two cores); level 6 at 1 MiB was smaller still but took 92 s.
BLOCK_SIZE = 1 << 20
XZ_LEVEL = 2


def _packer_options(compression: Compression, epoch: int, image: Path, jobs: int) -> list[str | Path]:
    """What tar2sqfs and gensquashfs (both squashfs-tools-ng) share."""
    extra = ["--comp-extra", f"level={XZ_LEVEL}"] if compression is Compression.XZ else []
    return ["--compressor", compression.value, *extra, "--block-size", str(BLOCK_SIZE), "--num-jobs", str(jobs),
            "--defaults", f"mtime={epoch}", "--quiet", "--force", image]


def tar2sqfs_argv(compression: Compression, epoch: int, image: Path, jobs: int) -> list[str | Path]:
    return ["tar2sqfs", *_packer_options(compression, epoch, image, jobs)]


def gensquashfs_argv(compression: Compression, epoch: int, pack_file: Path, image: Path, jobs: int
                     ) -> list[str | Path]:
    """The ext4 image into a squashfs as LiveOS/rootfs.img, read in place (no copy into a tar)."""
    return ["gensquashfs", "--pack-file", pack_file, *_packer_options(compression, epoch, image, jobs)]


def pack_file(ext4: Path) -> str:
    """gensquashfs's listing: the LiveOS directory and the image in it, both owned by root."""
    return f"dir /LiveOS 0755 0 0\nfile /{ROOT_IMAGE} 0644 0 0 {ext4}\n"


def _squash(root_tar: Path, compression: Compression, epoch: int, image: Path, threads: int) -> None:
    with Metered(root_tar, "tar2sqfs") as tar:
        run(tar2sqfs_argv(compression, epoch, image, threads), stdin=tar, what="tar2sqfs")


def _ext4(root_tar: Path, epoch: int, volume: str, image: Path) -> None:
    size, inodes = ext4_geometry(root_tar)
    run(mke2fs_argv(root_tar, image, volume, size, inodes), env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
        what="mke2fs")
    log(f"ext4 root: {size >> 20} MiB, {inodes} inodes")


def _xfs(root_tar: Path, epoch: int, volume: str, image: Path, input_key: str) -> None:
    files = fresh_dir(image.parent / "xfs-files")
    tree = xfs_tree(root_tar, files)
    protofile = image.parent / "xfs.proto"
    # names as the tar had them, in whatever bytes (tarfile decodes with surrogateescape)
    protofile.write_bytes(tree.protofile.encode("utf-8", "surrogateescape"))
    profile = lts_profile(tree.kernel_release, [p.name for p in PROFILES.glob("*.conf")])
    size = image_size(tree.content_bytes, tree.protofile.count("\n"))
    with image.open("wb") as blank:
        blank.truncate(size)
    env = {**os.environ, **frozen_env(epoch, input_key)}
    run(mkfs_xfs_argv(image, protofile, volume, profile), env=env, what="mkfs.xfs")
    if tree.sticky:
        run(sticky_argv(image, tree.sticky), env=env, stdout=subprocess.DEVNULL, what="xfs_db")
    shutil.rmtree(files)
    log(f"xfs root: {size >> 20} MiB, features of {profile or 'mkfs.xfs defaults'} (kernel {tree.kernel_release})")


def _image_in_squashfs(root_tar: Path, options: SquashfsOptions, epoch: int, volume: str, workspace: Workspace,
                       request: StageRequest) -> Path:
    """filesystem="ext4" or "xfs": the filesystem image, then a squashfs holding it."""
    inner = workspace.tmp / "rootfs.img"
    threads = request.threads
    if options.filesystem is RootFilesystem.XFS:
        _xfs(root_tar, epoch, volume, inner, request.inputs["rootfs"])
    else:
        _ext4(root_tar, epoch, volume, inner)
    image = workspace.out / SQUASHFS_IMAGE
    fresh_dir(image.parent)
    listing = workspace.tmp / "pack.txt"
    listing.write_text(pack_file(inner))
    run(gensquashfs_argv(options.compression, epoch, listing, image, threads), what="gensquashfs")
    inner.unlink()
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
    if options.filesystem.in_squashfs:
        image = _image_in_squashfs(root_tar, options, epoch, volume, workspace, request)
    elif options.filesystem is RootFilesystem.EROFS:
        image = _erofs(root_tar, options, epoch, volume, workspace)
    else:
        image = workspace.out / SQUASHFS_IMAGE
        fresh_dir(image.parent)
        _squash(root_tar, options.compression, epoch, image, request.threads)
    compressed = options.erofs if options.filesystem is RootFilesystem.EROFS else options.compression.value
    log(f"{image.name} ({options.filesystem.value}, {compressed}): {image.stat().st_size // (1 << 20)} MiB")
    return Outcome(tools=package_version("squashfs-tools-ng", "e2fsprogs", "erofs-utils", "xfsprogs", "faketime"),
                   facts={"filesystem": options.filesystem.value, "uuid": volume})
