"""squashfs: the root tar becomes LiveOS/squashfs.img, read straight from the tar.

tar2sqfs takes owners, modes, times and file capabilities from the tar headers, so it
runs as an unprivileged user and never unpacks the root. The tar is already sorted with
clamped times, which is what makes the image's bytes repeatable.
"""

from __future__ import annotations

import os
from pathlib import Path

from liveorch.stages.contract import Outcome, StageRequest, Workspace
from liveorch.stages.contracts.rootfs import ROOT_TAR
from liveorch.stages.contracts.squashfs import SQUASHFS_IMAGE, SquashfsOptions
from liveorch.stages.tools import fresh_dir, log, package_version, run


def tar2sqfs_argv(options: SquashfsOptions, epoch: int, image: Path, jobs: int) -> list[str | Path]:
    return [
        "tar2sqfs",
        "--compressor", options.compression.value,
        "--num-jobs", str(jobs),
        "--defaults", f"mtime={epoch}",
        "--quiet",
        "--force",
        image,
    ]


def execute(request: StageRequest, workspace: Workspace) -> Outcome:
    options: SquashfsOptions = request.options
    image = workspace.out / SQUASHFS_IMAGE
    fresh_dir(image.parent)
    with (workspace.input(request, "rootfs") / ROOT_TAR).open("rb") as tar:
        run(tar2sqfs_argv(options, request.source_date_epoch, image, os.cpu_count() or 1), stdin=tar,
            what="tar2sqfs")
    log(f"squashfs ({options.compression.value}): {image.stat().st_size // (1 << 20)} MiB")
    return Outcome(tools=package_version("squashfs-tools-ng"))
