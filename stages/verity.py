"""verity_blocks: a dm-verity hash tree over the live root image, and the small initramfs
that carries its root hash to the live initrd.

The tree is made on files (veritysetup format needs no device or privilege) with no
superblock, so everything the kernel needs sits in one table line the initrd builds from
VERITY_CONF. Salt and UUID come from the ISO's identity: the same inputs give the same tree.
The root hash travels in a second initramfs that GRUB loads after the image's initrd, so
the initrd stage never waits for the root image (and is shared by builds that differ only
in the root).
"""

from __future__ import annotations

import hashlib
import re
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path

from liveorch.stages.contracts.iso import VERITY_CONF, VERITY_DEVICE, VERITY_SUFFIX, Verity
from liveorch.stages.tools import StageError, capture, log

BLOCK = 4096
ALGORITHM = "sha256"


@dataclass(frozen=True)
class HashTree:
    root_hash: str
    salt: str
    data_blocks: int  # the blocks the tree covers
    image_blocks: int  # the whole image; the blocks past data_blocks are mapped unchecked


def salt_and_uuid(identity: str) -> tuple[str, str]:
    """Both from the medium's identity hash, so they change with the root and nothing else."""
    digest = hashlib.sha256(f"verity\0{identity}".encode()).digest()
    return digest.hex(), str(uuid.UUID(bytes=digest[:16], version=4))


def covered_blocks(image: Path, verity: Verity) -> tuple[int, int]:
    """(blocks the tree covers, blocks in the image); the image must be whole blocks."""
    size = image.stat().st_size
    if size % BLOCK:
        raise StageError(f"{image.name} is {size} bytes, not a whole number of {BLOCK}-byte blocks: "
                         "dm-verity cannot cover it")
    total = size // BLOCK
    return (total if verity.blocks is None else min(verity.blocks, total)), total


def veritysetup_argv(image: Path, tree: Path, salt: str, volume: str, blocks: int) -> list[str | Path]:
    return [
        "veritysetup", "format",
        "--format=1",
        f"--hash={ALGORITHM}",
        f"--data-block-size={BLOCK}",
        f"--hash-block-size={BLOCK}",
        f"--data-blocks={blocks}",
        "--no-superblock",
        f"--salt={salt}",
        f"--uuid={volume}",
        image, tree,
    ]


def parse_root_hash(output: str) -> str:
    match = re.search(r"^Root hash:\s*([0-9a-f]{64})\s*$", output, re.MULTILINE)
    if match is None:
        raise StageError("veritysetup format printed no root hash")
    return match.group(1)


def make_hash_tree(image: Path, tree: Path, verity: Verity, identity: str) -> HashTree:
    """Writes the hash tree of `image` to `tree`; returns what the initrd needs to open it."""
    data_blocks, image_blocks = covered_blocks(image, verity)
    salt, volume = salt_and_uuid(identity)
    root_hash = parse_root_hash(capture(veritysetup_argv(image, tree, salt, volume, data_blocks)))
    log(f"dm-verity: {data_blocks} of {image_blocks} blocks of {image.name} covered, root hash {root_hash}")
    return HashTree(root_hash, salt, data_blocks, image_blocks)


def conf_text(image_name: str, volid: str, tree: HashTree) -> str:
    """VERITY_CONF, sourced by the initrd's liveorch-verity script."""
    values = {
        "VERITY_MEDIUM_LABEL": volid,
        "VERITY_IMAGE": f"LiveOS/{image_name}",
        "VERITY_TREE": f"LiveOS/{image_name}{VERITY_SUFFIX}",
        "VERITY_DEVICE": VERITY_DEVICE,
        "VERITY_ALGORITHM": ALGORITHM,
        "VERITY_BLOCK": str(BLOCK),
        "VERITY_ROOT_HASH": tree.root_hash,
        "VERITY_SALT": tree.salt,
        "VERITY_DATA_BLOCKS": str(tree.data_blocks),
        "VERITY_IMAGE_BLOCKS": str(tree.image_blocks),
    }
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


def _newc_entry(name: str, mode: int, data: bytes, epoch: int, inode: int) -> bytes:
    encoded = name.encode()
    fields = (inode, mode, 0, 0, 1, epoch, len(data), 0, 0, 0, 0, len(encoded) + 1, 0)
    header = b"070701" + b"".join(f"{value:08X}".encode() for value in fields)
    entry = header + encoded + b"\0"
    entry += b"\0" * (-len(entry) % 4) + data
    return entry + b"\0" * (-len(entry) % 4)


def newc_cpio(files: dict[str, bytes], epoch: int) -> bytes:
    """An uncompressed newc archive (what the kernel unpacks as an initramfs) of these
    files and their parent directories, owned by root, dated `epoch`, in a fixed order."""
    directories = sorted({str(parent) for name in files for parent in Path(name).parents if str(parent) != "."})
    entries = [(name, 0o040755, b"") for name in directories] + [(n, 0o100644, files[n]) for n in sorted(files)]
    archive = b"".join(_newc_entry(name, mode, data, epoch, inode)
                       for inode, (name, mode, data) in enumerate(entries, start=1))
    return archive + _newc_entry("TRAILER!!!", 0, b"", 0, 0)


def verity_initramfs(image_name: str, volid: str, tree: HashTree, epoch: int) -> bytes:
    return newc_cpio({VERITY_CONF: conf_text(image_name, volid, tree).encode()}, epoch)
