"""squashfs's ext4 and erofs layouts on a small real root tar: the geometry the ext4 image
gets, the command lines, the pack file gensquashfs reads, and the kernel check that refuses
an EROFS compressor the image's kernel cannot decompress."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from liveorch.stages import squashfs
from liveorch.stages.contracts.squashfs import (
    Compression,
    ErofsAlgorithm,
    ErofsCompression,
    RootFilesystem,
    SquashfsOptions,
)
from liveorch.stages.root_image import (
    HEADROOM_BYTES,
    check_erofs_support,
    ext4_geometry,
    kernel_config,
    volume_uuid,
)
from liveorch.stages.tools import StageError

BOOKWORM_CONFIG = "CONFIG_EROFS_FS=m\nCONFIG_EROFS_FS_ZIP=y\n# CONFIG_EROFS_FS_ZIP_LZMA is not set\n"
LZ4HC = ErofsCompression(ErofsAlgorithm.LZ4HC, 12)


def root_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("./", "./boot", "./etc"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_ext4_geometry_counts_blocks_and_entries(tmp_path: Path) -> None:
    tar = tmp_path / "root.tar"
    tar.write_bytes(root_tar({"./etc/big": b"x" * 10000, "./etc/small": b"y"}))
    size, inodes = ext4_geometry(tar)
    # 3 directories (a block each) + 3 blocks + 1 block of file data, with a quarter more
    assert size == HEADROOM_BYTES + (int(7 * 4096 * 1.25) // (1 << 20)) * (1 << 20)
    assert inodes == int(5 * 1.25) + 8192


def test_volume_uuid_follows_the_input_and_the_layout() -> None:
    ext4 = volume_uuid("rootfs-key", "ext4")
    assert ext4 == volume_uuid("rootfs-key", "ext4")
    assert len({ext4, volume_uuid("rootfs-key", "erofs"), volume_uuid("other-key", "ext4")}) == 3
    assert ext4[14] == "4"  # a version-4 UUID, as mke2fs and mkfs.erofs expect


def test_ext4_layout_packs_the_image_into_squashfs(workspace, publish, make_request, commands) -> None:
    entry = publish("rootfs", {"root.tar": root_tar({"./etc/hostname": b"live\n"})})
    packs: list[str] = []
    commands.on("mke2fs", lambda call, _: Path(call.argv[-2]).write_bytes(b"fake ext4\n"))
    commands.on("gensquashfs", lambda call, _: (packs.append(Path(call.argv[2]).read_text()),
                                                Path(call.argv[-1]).write_bytes(b"hsqs\n")))
    options = SquashfsOptions(filesystem=RootFilesystem.EXT4, compression=Compression.ZSTD, erofs=None)

    outcome = squashfs.execute(make_request("squashfs", options, {"rootfs": "rootfs-key"}, threads=2), workspace)

    mke2fs, gensquashfs = commands.calls
    volume = volume_uuid("rootfs-key", "ext4")
    ext4 = workspace.tmp / "rootfs.img"
    assert mke2fs.argv[:17] == ["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-N", str(int(4 * 1.25) + 8192),
                                "-m", "0", "-L", "rootfs", "-U", volume, "-E",
                                f"hash_seed={volume},root_owner=0:0"]
    assert mke2fs.argv[17:] == ["-d", str(entry / "root.tar"), str(ext4), mke2fs.argv[-1]]
    assert mke2fs.env is not None and mke2fs.env["SOURCE_DATE_EPOCH"] == "1700000000"
    image = workspace.out / "LiveOS/squashfs.img"
    assert gensquashfs.argv == ["gensquashfs", "--pack-file", str(workspace.tmp / "pack.txt"), "--compressor", "zstd",
                                "--block-size", "1048576", "--num-jobs", "2", "--defaults", "mtime=1700000000",
                                "--quiet", "--force", str(image)]
    assert packs == [f"dir /LiveOS 0755 0 0\nfile /LiveOS/rootfs.img 0644 0 0 {ext4}\n"]
    assert not ext4.exists()  # only the squashfs is an output
    assert sorted(p.name for p in (workspace.out / "LiveOS").iterdir()) == ["squashfs.img"]
    assert outcome.facts == {"filesystem": "ext4", "uuid": volume}


def test_erofs_layout_writes_the_root_image_on_the_medium(workspace, publish, make_request, commands) -> None:
    entry = publish("rootfs", {"root.tar": root_tar({"./boot/config-6.1.0-18-amd64": BOOKWORM_CONFIG.encode()})})
    commands.on("mkfs.erofs", lambda call, _: Path(call.argv[-2]).write_bytes(b"fake erofs\n"))
    options = SquashfsOptions(filesystem=RootFilesystem.EROFS, compression=Compression.XZ, erofs=LZ4HC)

    squashfs.execute(make_request("squashfs", options, {"rootfs": "rootfs-key"}), workspace)

    image = workspace.out / "LiveOS/rootfs.img"
    assert commands.argvs == [["mkfs.erofs", "--quiet", "-zlz4hc,12", "-T", "1700000000",
                               "-U", volume_uuid("rootfs-key", "erofs"), "-L", "rootfs", "--tar=f",
                               str(image), str(entry / "root.tar")]]
    assert image.is_file() and not (workspace.out / "LiveOS/squashfs.img").exists()


def test_erofs_layout_refuses_a_compressor_the_kernel_lacks(workspace, publish, make_request, commands) -> None:
    publish("rootfs", {"root.tar": root_tar({"./boot/config-6.1.0-18-amd64": BOOKWORM_CONFIG.encode()})})
    lzma = ErofsCompression(ErofsAlgorithm.LZMA, None)
    options = SquashfsOptions(filesystem=RootFilesystem.EROFS, compression=Compression.XZ, erofs=lzma)
    with pytest.raises(StageError, match=r'erofscompression="lzma".*CONFIG_EROFS_FS_ZIP_LZMA is not set'):
        squashfs.execute(make_request("squashfs", options, {"rootfs": "rootfs-key"}), workspace)
    assert commands.calls == []


@pytest.mark.parametrize(("config", "message"), [
    ({}, r"no EROFS support \(CONFIG_EROFS_FS\)"),
    ({"CONFIG_EROFS_FS": "m"}, r"cannot decompress lz4hc \(CONFIG_EROFS_FS_ZIP is not set\)"),
])
def test_check_erofs_support(config: dict[str, str], message: str) -> None:
    with pytest.raises(StageError, match=message):
        check_erofs_support(config, LZ4HC)
    check_erofs_support({"CONFIG_EROFS_FS": "y", "CONFIG_EROFS_FS_ZIP": "y"}, LZ4HC)


def test_kernel_config_needs_one_in_the_root(tmp_path: Path) -> None:
    tar = tmp_path / "root.tar"
    tar.write_bytes(root_tar({"./boot/config-6.1.0-18-amd64": BOOKWORM_CONFIG.encode()}))
    assert kernel_config(tar) == {"CONFIG_EROFS_FS": "m", "CONFIG_EROFS_FS_ZIP": "y"}
    tar.write_bytes(root_tar({"./etc/hostname": b"x"}))
    with pytest.raises(StageError, match="no /boot/config"):
        kernel_config(tar)
