"""filesystem="xfs": an XFS root image from the root tar, made by mkfs.xfs from a protofile
on plain files, without mounts or privileges.

mkfs.xfs cannot read a tar, so the tar's regular files are written out under numbered names
and a protofile (mkfs.xfs(8)) gives every entry its name, type, owner and mode. What the
protofile cannot say is handled so the result stays faithful and repeatable:
- mkfs.xfs stamps inodes with the current time and random generation numbers: it runs under
  libfaketime with the time frozen at SOURCE_DATE_EPOCH and getrandom() seeded from the
  input key (FAKERANDOM_SEED), so the same root gives the same bytes;
- the sticky bit has no place in a protofile mode: xfs_db sets it afterwards;
- hard links become copies, and extended attributes (file capabilities, ACLs) are not
  carried: the ext4 layout keeps both.
The feature set is the newest of mkfs.xfs's LTS kernel profiles the image's kernel has.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from liveorch.stages.tools import StageError

FAKETIME_LIBRARY = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
PROFILES = Path("/usr/share/xfsprogs/mkfs")
# Room for what the live system writes (the snapshot changes only blocks the filesystem
# has) and for XFS's log and metadata: as for ext4, unused blocks cost nothing in squashfs.
HEADROOM_RATIO = 1.25
HEADROOM_BYTES = 768 << 20
TYPE_CHARS = {tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l", tarfile.CHRTYPE: "c", tarfile.BLKTYPE: "b",
              tarfile.FIFOTYPE: "p"}


@dataclass
class Node:
    """One protofile entry: `line` is its definition, `children` a directory's entries."""

    line: str
    directory: bool = True
    children: dict[str, Node] = field(default_factory=dict)


@dataclass
class XfsTree:
    protofile: str
    sticky: list[tuple[str, int]]  # directories (and their modes) whose sticky bit xfs_db sets afterwards
    content_bytes: int
    kernel_release: str | None


def _mode(member: tarfile.TarInfo, kind: str) -> str:
    return (kind + ("u" if member.mode & 0o4000 else "-") + ("g" if member.mode & 0o2000 else "-")
            + f"{member.mode & 0o777:03o}")


# What mkfs.xfs's protofile reader cannot take in a name: other whitespace (it splits on
# C's isspace), a leading ":" (a comment), "$" alone (the end of a directory).
UNWRITABLE = re.compile(r"[\t\n\r\v\f/]|^:|^\$$")


def _name(component: str, path: str) -> str:
    """A protofile name: spaces are written as slashes (mkfs.xfs's slashes_are_spaces=1)."""
    if UNWRITABLE.search(component):
        raise StageError(f'filesystem="xfs": /{path} has a name mkfs.xfs\'s protofile cannot hold; use ext4')
    return component.replace(" ", "/")


def _extra(member: tarfile.TarInfo, source: str | None) -> str:
    if member.issym():
        if re.search(r"[ \t\n\r\v\f]|^:", member.linkname):
            raise StageError(f'filesystem="xfs": the symlink /{member.name.removeprefix("./")} points at '
                             f"{member.linkname!r}, which mkfs.xfs's protofile cannot hold; use ext4")
        return f" {member.linkname}"
    if member.ischr() or member.isblk():
        return f" {member.devmajor} {member.devminor}"
    return f" {source}" if source else ""


def _parent(root: Node, parts: list[str]) -> Node:
    node = root
    for part in parts:
        node = node.children.setdefault(part, Node(f"{_name(part, part)} d--755 0 0"))
    return node


def _render(node: Node, lines: list[str]) -> None:
    for child in node.children.values():
        lines.append(child.line)
        if child.directory:
            _render(child, lines)
            lines.append("$")


def xfs_tree(root_tar: Path, files: Path) -> XfsTree:
    """Writes the tar's file contents under `files` and returns the protofile naming them."""
    root = Node("d--755 0 0")
    sticky: list[tuple[str, int]] = []
    sources: dict[str, str] = {}
    total, release = 0, None
    with tarfile.open(root_tar, mode="r:") as tar:
        for member in tar:
            path = member.name.removeprefix("./").rstrip("/")
            if path in ("", "."):
                root.line = f"{_mode(member, 'd')} {member.uid} {member.gid}"
                continue
            *parents, base = path.split("/")
            if base.startswith("config-") and parents == ["boot"]:
                release = base.removeprefix("config-")
            source = None
            if member.isfile():
                source = str(files / str(len(sources)))
                with tar.extractfile(member) as content, open(source, "wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(content, out, 1 << 20)
                sources[path] = source
                total += member.size
            elif member.islnk():
                source = sources.get(member.linkname.removeprefix("./"))
                if source is None:
                    raise StageError(f"/{path} is a hard link to /{member.linkname.removeprefix('./')}, which the "
                                     "tar has not had yet")
                total += Path(source).stat().st_size
            kind = "-" if source else TYPE_CHARS.get(member.type)
            if kind is None:
                raise StageError(f'filesystem="xfs": /{path} is of a kind mkfs.xfs cannot create')
            if member.isdir() and member.mode & 0o1000:
                if re.search(r"\s", path):
                    raise StageError(f'filesystem="xfs": the sticky directory /{path} has whitespace in its path, '
                                     "which xfs_db cannot name; use ext4")
                sticky.append(("/" + path, member.mode & 0o7777))
            line = f"{_name(base, path)} {_mode(member, kind)} {member.uid} {member.gid}{_extra(member, source)}"
            parent = _parent(root, parents)
            node = parent.children.setdefault(base, Node(line))
            node.line, node.directory = line, member.isdir()
    lines = ["/dev/null", "0 0", root.line]
    _render(root, lines)
    lines.append("$")
    return XfsTree("\n".join(lines) + "\n", sticky, total, release)


def image_size(content_bytes: int, entries: int) -> int:
    """Bytes for the image: the content with headroom, a block per entry, whole MiB."""
    size = int(content_bytes * HEADROOM_RATIO) + entries * 4096 + HEADROOM_BYTES
    return size - size % (1 << 20)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"[0-9]+", text)[:2])


def lts_profile(kernel_release: str | None, available: list[str]) -> str | None:
    """The newest lts_X.Y.conf not newer than the image's kernel (None: mkfs.xfs's own
    defaults, for a kernel newer than every profile)."""
    if kernel_release is None:
        raise StageError('filesystem="xfs": the root has no /boot/config-*: cannot tell which XFS features '
                         "its kernel mounts")
    profiles = sorted((_version(name), name) for name in available if re.fullmatch(r"lts_[0-9]+\.[0-9]+\.conf", name))
    if not profiles:
        raise StageError("this mkfs.xfs has no LTS kernel profiles (lts_*.conf) to match the image's kernel with")
    kernel = _version(kernel_release)
    usable = [name for version, name in profiles if version <= kernel]
    if not usable:
        raise StageError(f"the image's kernel {kernel_release} is older than every mkfs.xfs LTS profile")
    return None if kernel > profiles[-1][0] else usable[-1]


def mkfs_xfs_argv(image: Path, protofile: Path, volume: str, profile: str | None) -> list[str | Path]:
    options: list[str | Path] = ["-c", f"options={PROFILES / profile}"] if profile else []
    return [
        "mkfs.xfs", "-q", "-f",
        *options,
        "-L", "rootfs",
        "-m", f"uuid={volume}",
        "-p", f"file={protofile},slashes_are_spaces=1",
        image,
    ]


def frozen_env(epoch: int, input_key: str) -> dict[str, str]:
    """libfaketime's settings: the clock stopped at the epoch, getrandom() seeded by the key."""
    return {
        "LD_PRELOAD": FAKETIME_LIBRARY,
        "FAKETIME": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKERANDOM_SEED": "0x" + hashlib.sha256(f"xfs\0{input_key}".encode()).hexdigest()[:16],
        "TZ": "UTC",
    }


def sticky_argv(image: Path, directories: list[tuple[str, int]]) -> list[str | Path]:
    """xfs_db commands that give directories the sticky bit the protofile could not."""
    commands: list[str | Path] = []
    for directory, mode in directories:
        commands += ["-c", f"path {directory}", "-c", f"write core.mode 0{0o40000 | mode:o}"]
    return ["xfs_db", "-x", *commands, image]
