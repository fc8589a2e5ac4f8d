"""The live root's layout, from KIWI's iso `filesystem`, `erofscompression` and
`verity_blocks` attributes:
what goes on the medium, how each live module overlays it, and whether the image's kernel
can read it. Parsed once here; the plan turns it into stage options and boot parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.findings import Finding
from liveorch.orchestrator.source_map import SourceMap
from liveorch.stages.contracts.iso import Verity
from liveorch.stages.contracts.squashfs import ErofsAlgorithm, ErofsCompression, RootFilesystem

# What an unset filesystem= gives: the root straight in squashfs, the fastest and smallest
# layout (KIWI's own default, ext4, costs an mke2fs run and gains the dm snapshot).
DEFAULT_FILESYSTEM = RootFilesystem.SQUASHFS
DEFAULT_EROFS = ErofsCompression(ErofsAlgorithm.LZ4HC, None)
# EROFS compressors the kernels of known suites decompress (their /boot/config-*:
# bookworm's 6.1 has CONFIG_EROFS_FS_ZIP but not _LZMA, _DEFLATE or _ZSTD). Other suites
# are checked by the squashfs stage against the image's own kernel config.
EROFS_BY_SUITE = {"bookworm": frozenset({ErofsAlgorithm.LZ4, ErofsAlgorithm.LZ4HC})}
# mkfs.erofs's levels per compressor (lz4 takes none).
EROFS_LEVELS = {
    ErofsAlgorithm.LZ4: range(0),
    ErofsAlgorithm.LZ4HC: range(0, 13),
    ErofsAlgorithm.LZMA: range(0, 10),
    ErofsAlgorithm.DEFLATE: range(0, 10),
    ErofsAlgorithm.ZSTD: range(0, 23),
}


@dataclass(frozen=True)
class RootLayout:
    filesystem: RootFilesystem = DEFAULT_FILESYSTEM
    erofs: ErofsCompression | None = None
    line: int | None = None  # the <type> element's, for errors found later (the suite check)
    verity: Verity | None = None

    def describe(self) -> str:
        """One line for validate and the report: what is on the medium."""
        if self.filesystem.in_squashfs:
            medium = f"{self.filesystem.value} root image LiveOS/rootfs.img inside LiveOS/squashfs.img"
        elif self.filesystem is RootFilesystem.EROFS:
            medium = f"EROFS root image LiveOS/rootfs.img ({self.erofs})"
        else:
            medium = "root directly in LiveOS/squashfs.img"
        if self.verity is None:
            return medium
        covered = "every block" if self.verity.blocks is None else f"its first {self.verity.blocks} 4 KiB blocks"
        return f"{medium}, opened through dm-verity ({covered})"


def parse_erofs_compression(value: str, path: object, line: int | None) -> ErofsCompression:
    """KIWI's erofscompression: "lz4hc,12", "lzma", ..."""
    algorithm, _, level = value.partition(",")
    choices = ", ".join(a.value for a in ErofsAlgorithm)
    if algorithm not in {a.value for a in ErofsAlgorithm}:
        raise DescriptionError(f"erofscompression={value!r}: the compressor must be one of {choices} "
                               "(optionally with a level, e.g. lz4hc,12)", path, line)
    if level and not re.fullmatch(r"[0-9]{1,3}", level):
        raise DescriptionError(f"erofscompression={value!r}: the level after the comma must be a number", path, line)
    levels = EROFS_LEVELS[ErofsAlgorithm(algorithm)]
    if level and int(level) not in levels:
        allowed = f"{levels.start}-{levels.stop - 1}" if levels else "none"
        raise DescriptionError(f"erofscompression={value!r}: levels for {algorithm} are {allowed}", path, line)
    return ErofsCompression(ErofsAlgorithm(algorithm), int(level) if level else None)


def parse_verity(element: etree._Element, path: Path, source: SourceMap | None = None) -> Verity | None:
    """KIWI's verity_blocks: "all" or a positive block count."""
    value = element.get("verity_blocks")
    if value is None:
        return None
    if value == "all":
        return Verity(None)
    if not re.fullmatch(r"[0-9]{1,15}", value) or int(value) == 0:
        raise DescriptionError(f"verity_blocks={value!r} must be \"all\" or a positive number of 4 KiB blocks",
                               *_at(element, "verity_blocks", path, source))
    return Verity(int(value))


def check_verity(layout: RootLayout, dmsquash: bool, path: Path) -> None:
    """dracut's dmsquash-live takes the verity device as its live medium, which works for a
    squashfs only: an EROFS root with verity boots through flags="overlay"."""
    if layout.verity is not None and dmsquash and layout.filesystem is RootFilesystem.EROFS:
        raise DescriptionError('verity_blocks with filesystem="erofs" needs flags="overlay" (liveorch\'s live '
                               "module); dracut's dmsquash-live opens a verity device only holding a squashfs",
                               path, layout.line)


def _at(element: etree._Element, attribute: str, path: Path, source: SourceMap | None) -> tuple[object, int | None]:
    """A DescriptionError's (path, line): the attribute's own line, or the option that set it."""
    if source is None:
        return path, element.sourceline
    return source.where(element, attribute), None


def parse_layout(element: etree._Element, path: Path, warnings: list[str],
                 source: SourceMap | None = None) -> RootLayout:
    value = element.get("filesystem", DEFAULT_FILESYSTEM.value)
    line = element.sourceline
    choices = [f.value for f in RootFilesystem]
    if value not in choices:
        raise DescriptionError(f"filesystem={value!r} must be one of {', '.join(choices)}",
                               *_at(element, "filesystem", path, source))
    filesystem = RootFilesystem(value)
    compression = element.get("erofscompression")
    verity = parse_verity(element, path, source)
    if filesystem is not RootFilesystem.EROFS:
        if compression is not None:
            where = source.where(element, "erofscompression") if source else f"{path}:{line}"
            warnings.append(Finding(where, "erofscompression= applies to filesystem=\"erofs\" only; ignored",
                                    "remove it, or set filesystem=\"erofs\""))
        return RootLayout(filesystem, None, line, verity)
    erofs = parse_erofs_compression(compression, *_at(element, "erofscompression", path, source)) if compression \
        else DEFAULT_EROFS
    return RootLayout(filesystem, erofs, line, verity)


def check_kernel_support(layout: RootLayout, suite: str | None, path: Path) -> None:
    """Refuse at validate time an EROFS compressor the suite's kernel cannot decompress."""
    supported = EROFS_BY_SUITE.get(suite or "")
    if layout.erofs is None or supported is None or layout.erofs.algorithm in supported:
        return
    usable = ", ".join(sorted(a.value for a in supported))
    raise DescriptionError(f"erofscompression=\"{layout.erofs}\": the {suite} kernel cannot decompress "
                           f"{layout.erofs.algorithm.value} EROFS images; use {usable}", path, layout.line)
