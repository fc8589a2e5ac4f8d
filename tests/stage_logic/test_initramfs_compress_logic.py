"""The initramfs compression: the format the image's kernel unpacks, and dracut's early cpio
(microcode) kept uncompressed in front of the compressed main archive."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveorch.stages.initramfs_compress import (
    InitramfsCompression,
    choose,
    compress,
    compressor_argv,
    early_cpio_end,
)
from liveorch.stages.tools import StageError


def newc(*entries: tuple[str, bytes]) -> bytes:
    """A newc cpio archive as GNU cpio writes it: entries, the trailer, padded to 512 bytes."""
    out = b""
    for ino, (name, data) in enumerate([*entries, ("TRAILER!!!", b"")]):
        fields = [ino, 0o100644, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        out += b"070701" + b"".join(f"{v:08X}".encode() for v in fields) + name.encode() + b"\0"
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return out + b"\0" * (-len(out) % 512)


EARLY = newc((".", b""), ("early_cpio", b"1\n"), ("kernel/x86/microcode/GenuineIntel.bin", b"\x01" * 1001))
MAIN = newc((".", b""), ("init", b"#!/bin/sh\n"), ("usr/lib/modules/x.ko", b"\x7fELF" * 300))


@pytest.mark.parametrize(("config", "expected"), [
    ({"CONFIG_RD_GZIP": "y", "CONFIG_RD_XZ": "y", "CONFIG_RD_ZSTD": "y"}, InitramfsCompression.ZSTD),
    ({"CONFIG_RD_GZIP": "y", "CONFIG_RD_XZ": "y"}, InitramfsCompression.XZ),
    ({"CONFIG_RD_GZIP": "y", "CONFIG_RD_ZSTD": "m"}, InitramfsCompression.GZIP),  # the kernel unpacks it before modules
    ({}, InitramfsCompression.GZIP),  # no /boot/config-*: what every kernel reads
])
def test_the_kernels_own_config_chooses_the_format(config: dict[str, str], expected: InitramfsCompression) -> None:
    assert choose(config) is expected


def test_a_kernel_that_unpacks_none_of_them_is_a_stage_error() -> None:
    with pytest.raises(StageError, match="cannot unpack a zstd, xz or gzip initramfs"):
        choose({"CONFIG_RD_LZ4": "y", "CONFIG_BLK_DEV_INITRD": "y"})


def test_compressor_settings_are_fixed_and_take_the_thread_budget() -> None:
    assert compressor_argv(InitramfsCompression.ZSTD, 3) == ["zstd", "-9", "-T3", "--quiet", "--stdout"]
    assert compressor_argv(InitramfsCompression.XZ, 2) == [
        "xz", "--check=crc32", "--lzma2=dict=1MiB", "--threads=2", "--stdout"]
    assert compressor_argv(InitramfsCompression.GZIP, 8) == ["gzip", "-n", "-9", "--stdout"]


def test_the_early_cpio_ends_after_its_trailer_and_padding() -> None:
    assert len(EARLY) % 512 == 0
    assert early_cpio_end(EARLY + MAIN) == len(EARLY)


def test_a_main_archive_alone_has_no_early_part() -> None:
    assert early_cpio_end(MAIN) == 0
    assert early_cpio_end(b"") == 0
    assert early_cpio_end(b"\x28\xb5\x2f\xfd already compressed") == 0


def test_an_early_cpio_cut_short_is_refused() -> None:
    with pytest.raises(StageError, match="early cpio has no trailer"):
        early_cpio_end(EARLY[:300])


def test_compress_keeps_the_early_cpio_and_pipes_only_the_main_archive(tmp_path: Path, commands) -> None:
    raw, target = tmp_path / "initrd.cpio", tmp_path / "initrd.img"
    raw.write_bytes(EARLY + MAIN)
    commands.on("zstd", lambda call, stdout: stdout.write(b"ZSTD[" + (call.stdin or b"") + b"]"))

    compress(raw, target, InitramfsCompression.ZSTD, 2)

    assert commands.argvs == [["zstd", "-9", "-T2", "--quiet", "--stdout"]]
    assert target.read_bytes() == EARLY + b"ZSTD[" + MAIN + b"]"


def test_compress_without_an_early_cpio_compresses_everything(tmp_path: Path, commands) -> None:
    raw, target = tmp_path / "initrd.cpio", tmp_path / "initrd.img"
    raw.write_bytes(MAIN)
    commands.on("gzip", lambda call, stdout: stdout.write(b"GZ[" + (call.stdin or b"") + b"]"))

    compress(raw, target, InitramfsCompression.GZIP, 1)

    assert target.read_bytes() == b"GZ[" + MAIN + b"]"
