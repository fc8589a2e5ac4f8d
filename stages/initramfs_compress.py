"""Compressing the initramfs outside dracut, with the stage's own compressor and thread budget.

dracut's own compression was most of the initrd stage's time: `gzip -9` (or `zstd -15`) run
single-threaded inside the chroot took 49 s of the stage's 62 s on the example, while the
cpio itself takes 6 s. So dracut writes an uncompressed image (`--no-compress`) and the stage
compresses it with the stage image's zstd using every thread it was given: 2 s, and 33.6 MB
against gzip's 40.0 MB. zstd's multi-threaded output does not depend on the thread count, so
the bytes stay the same on a 2-core and a 16-core machine.

The format is the one the image's own kernel can unpack (its /boot/config-*), preferring zstd.
An early cpio (CPU microcode, ACPI tables) must stay uncompressed in front of the main archive,
as dracut itself writes it: it is split off and copied as it is.
"""

from __future__ import annotations

import itertools
import mmap
from collections.abc import Iterator
from enum import Enum
from pathlib import Path

from liveorch.stages.tools import StageError, log, run


class InitramfsCompression(Enum):
    ZSTD = "zstd"
    XZ = "xz"
    GZIP = "gzip"


# In order of preference: the kernel option that lets the kernel unpack each format.
KERNEL_OPTIONS = {
    InitramfsCompression.ZSTD: "CONFIG_RD_ZSTD",
    InitramfsCompression.XZ: "CONFIG_RD_XZ",
    InitramfsCompression.GZIP: "CONFIG_RD_GZIP",
}
# zstd -9: 33.6 MB in 2.1 s with 2 threads on the example's 136 MB cpio; -15 (dracut's choice)
# gives 33.2 MB in 12.3 s, -19 29.6 MB in 48 s.
ZSTD_LEVEL = 9
CPIO_MAGIC = b"070701"
CPIO_HEADER = 110
EARLY_MARKER = "early_cpio"  # the file dracut puts first into its early cpio
TRAILER = "TRAILER!!!"


def choose(config: dict[str, str]) -> InitramfsCompression:
    """The first format the kernel unpacks built in; gzip when the config says nothing."""
    for compression, option in KERNEL_OPTIONS.items():
        if config.get(option) == "y":
            return compression
    if config:
        raise StageError("the image's kernel cannot unpack a zstd, xz or gzip initramfs "
                         "(CONFIG_RD_ZSTD, CONFIG_RD_XZ and CONFIG_RD_GZIP are all unset)")
    return InitramfsCompression.GZIP


def compressor_argv(compression: InitramfsCompression, threads: int) -> list[str]:
    """Fixed settings, so the same cpio always gives the same bytes."""
    if compression is InitramfsCompression.ZSTD:
        # Any -T count >= 1 gives the same frames (measured: -T1 and -T2 are bit-identical).
        return ["zstd", f"-{ZSTD_LEVEL}", f"-T{threads}", "--quiet", "--stdout"]
    if compression is InitramfsCompression.XZ:
        # The kernel's xz unpacker wants CRC32 checks and a dictionary it can allocate early.
        return ["xz", "--check=crc32", "--lzma2=dict=1MiB", f"--threads={threads}", "--stdout"]
    return ["gzip", "-n", "-9", "--stdout"]


def _entries(data: bytes | mmap.mmap, offset: int) -> Iterator[tuple[str, int]]:
    """(name, offset after the entry) for each entry of the newc archive at `offset`."""
    while data[offset:offset + 6] == CPIO_MAGIC and offset + CPIO_HEADER <= len(data):
        header = data[offset:offset + CPIO_HEADER]
        namesize, filesize = int(header[94:102], 16), int(header[54:62], 16)
        name = bytes(data[offset + CPIO_HEADER:offset + CPIO_HEADER + namesize - 1]).decode(errors="replace")
        offset = (offset + CPIO_HEADER + namesize + 3) & ~3
        offset = (offset + filesize + 3) & ~3
        yield name, offset


def early_cpio_end(data: bytes | mmap.mmap) -> int:
    """Where the main archive starts: after dracut's early cpio and its padding, or 0.

    dracut's early cpio holds `.` then its marker file; any other first archive is the main one.
    """
    entries = _entries(data, 0)
    if EARLY_MARKER not in [name for name, _ in itertools.islice(entries, 2)]:
        return 0
    for name, offset in entries:
        if name == TRAILER:
            while offset < len(data) and data[offset] == 0:
                offset += 1
            return offset
    raise StageError("dracut's early cpio has no trailer: the initramfs is cut short")


def compress(raw: Path, target: Path, compression: InitramfsCompression, threads: int) -> None:
    """Writes the early cpio as it is, then the main archive through the compressor."""
    with raw.open("rb", buffering=0) as source, target.open("wb") as sink:
        early = 0
        if raw.stat().st_size:
            with mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as data:
                early = early_cpio_end(data)
                sink.write(data[:early])
        if early:
            log(f"early cpio: {early} bytes, kept uncompressed in front")
        sink.flush()
        source.seek(early)
        run(compressor_argv(compression, threads), stdin=source, stdout=sink,
            what=f"compressing the initramfs ({compression.value})")
