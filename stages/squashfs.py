"""squashfs: the root tar becomes LiveOS/squashfs.img, read straight from the tar.

tar2sqfs takes owners, modes, times and file capabilities from the tar headers, so it
runs as an unprivileged user and never unpacks the root. The tar is already sorted with
clamped times, which is what makes the image's bytes repeatable.
"""

from __future__ import annotations

import os
from pathlib import Path

from liveorch.stages.contract import StageRequest
from liveorch.stages.tools import Outcome, StageError, log, package_version, run

COMPRESSORS = {"xz": "xz", "zstd": "zstd", "lz4": "lz4", "gzip": "gzip", "lzo": "lzo"}


def execute(request: StageRequest, out: Path) -> Outcome:
    compression = request.options.get("compression", "xz")
    if compression not in COMPRESSORS:
        raise StageError(f"unsupported squashfs compression {compression!r}: choose one of {sorted(COMPRESSORS)}")
    root_tar = Path(request.inputs["rootfs"]) / "root.tar"
    image = out / "LiveOS" / "squashfs.img"
    image.parent.mkdir()
    with root_tar.open("rb") as tar:
        run([
            "tar2sqfs",
            "--compressor", COMPRESSORS[compression],
            "--num-jobs", str(os.cpu_count() or 1),
            "--defaults", f"mtime={request.source_date_epoch}",
            "--quiet",
            "--force",
            image,
        ], stdin=tar, what="tar2sqfs")
    log(f"squashfs ({compression}): {image.stat().st_size // (1 << 20)} MiB")
    return Outcome(tools=package_version("squashfs-tools-ng"))
