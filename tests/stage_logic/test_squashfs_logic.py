"""squashfs: each root layout's exact command lines. The flat layout feeds the root tar to
tar2sqfs on stdin; ext4 makes the image with mke2fs -d and packs it with gensquashfs; erofs
checks the image's kernel config (read from the tar) before mkfs.erofs."""

from __future__ import annotations

import pytest

from liveorch.stages import squashfs
from liveorch.stages.contract import parse_progress
from liveorch.stages.contracts.squashfs import Compression, RootFilesystem, SquashfsOptions

ROOT_TAR = b"./etc/hostname fake tar bytes\n" * 3


def flat(compression: Compression) -> SquashfsOptions:
    return SquashfsOptions(filesystem=RootFilesystem.SQUASHFS, compression=compression, erofs=None)


@pytest.mark.parametrize(("compression", "name"), [(Compression.XZ, "xz"), (Compression.ZSTD, "zstd"),
                                                   (Compression.LZ4, "lz4"), (Compression.GZIP, "gzip"),
                                                   (Compression.LZO, "lzo")])
def test_tar2sqfs_argv_and_stdin(workspace, publish, make_request, commands, epoch, compression, name,
                                 capsys) -> None:
    entry = publish("rootfs", {"root.tar": ROOT_TAR})
    request = make_request("squashfs", flat(compression), {"rootfs": "rootfs-key"}, threads=3)

    outcome = squashfs.execute(request, workspace)

    image = workspace.out / "LiveOS" / "squashfs.img"
    extra = ["--comp-extra", "level=2"] if compression is Compression.XZ else []
    assert commands.argvs == [[
        "tar2sqfs",
        "--compressor", name, *extra,
        "--block-size", "1048576",
        "--num-jobs", "3",
        "--defaults", "mtime=1700000000",
        "--quiet",
        "--force",
        str(image),
    ]]
    assert epoch == 1_700_000_000
    (call,) = commands.calls
    assert call.stdin == ROOT_TAR
    assert call.stdin_name == str(entry / "root.tar")
    assert image.is_file()  # the placeholder the fake tar2sqfs wrote, which the stage stat()s
    assert outcome.tools == {name: commands.version
                             for name in ("squashfs-tools-ng", "e2fsprogs", "erofs-utils", "xfsprogs", "faketime")}
    assert outcome.facts["filesystem"] == "squashfs"
    # reading the tar is the stage's progress, reported up to the whole tar
    progress = [parse_progress(line) for line in capsys.readouterr().out.splitlines()]
    assert [step for step in progress if step] == [(100.0, "tar2sqfs: 0.00 of 0.00 GiB read")]


def test_num_jobs_is_the_requests_thread_budget(workspace, publish, make_request, commands) -> None:
    publish("rootfs", {"root.tar": ROOT_TAR})
    request = make_request("squashfs", flat(Compression.XZ), {"rootfs": "rootfs-key"}, epoch=86400)

    squashfs.execute(request, workspace)

    (argv,) = commands.argvs
    assert argv[argv.index("--num-jobs") + 1] == "1"
    assert argv[argv.index("--defaults") + 1] == "mtime=86400"


def test_a_missing_root_tar_runs_nothing(workspace, publish, make_request, commands) -> None:
    publish("rootfs", {"packages": b""})
    request = make_request("squashfs", flat(Compression.XZ), {"rootfs": "rootfs-key"})

    with pytest.raises(FileNotFoundError):
        squashfs.execute(request, workspace)
    assert commands.calls == []
