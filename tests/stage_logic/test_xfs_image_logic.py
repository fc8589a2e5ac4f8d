"""filesystem="xfs", the stage side: the protofile xfs_tree makes from the root tar (the contract
with mkfs.xfs(8), so it is checked to the byte), the content files it names, the LTS feature
profile for the image's kernel, mkfs.xfs's and xfs_db's command lines, the frozen clock and
seeded randomness, and the squashfs stage wiring them together with its tools recorded.

Where the host has xfsprogs, the protofile also goes through the real mkfs.xfs and xfs_db
(a few hundred MiB of sparse file, under a second each); those tests are skipped otherwise.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from liveorch.stages import squashfs
from liveorch.stages.contract import Outcome, StageRequest, Workspace
from liveorch.stages.contracts.squashfs import Compression, RootFilesystem, SquashfsOptions
from liveorch.stages.root_image import volume_uuid
from liveorch.stages.tools import StageError
from liveorch.stages.xfs_image import (
    FAKETIME_LIBRARY,
    HEADROOM_BYTES,
    PROFILES,
    frozen_env,
    image_size,
    lts_profile,
    mkfs_xfs_argv,
    sticky_argv,
    xfs_tree,
)

EPOCH = 1_700_000_000  # 2023-11-14 22:13:20 UTC, the stage_logic conftest's epoch
RELEASE = "6.1.0-41-amd64"
KERNEL_CONFIG = b"CONFIG_XFS_FS=m\n"
MIB = 1 << 20
# mkfs.xfs's LTS profiles as xfsprogs 6.13 (trixie, the stage image) installs them, with the
# one non-LTS file it has beside them.
TRIXIE_PROFILES = ["dax_x86_64.conf", "lts_4.19.conf", "lts_5.10.conf", "lts_5.15.conf", "lts_5.4.conf",
                   "lts_6.1.conf", "lts_6.12.conf", "lts_6.6.conf"]
VOLUME = volume_uuid("rootfs-key", "xfs")


# --- small root tars ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One tar member: `link` is a symlink's target or a hard link's source, `dev` (major, minor)."""

    name: str
    kind: bytes = tarfile.REGTYPE
    mode: int = 0o644
    data: bytes = b""
    uid: int = 0
    gid: int = 0
    link: str = ""
    dev: tuple[int, int] = (0, 0)


def directory(name: str, mode: int = 0o755, gid: int = 0) -> Entry:
    return Entry(name, tarfile.DIRTYPE, mode, gid=gid)


def write_tar(path: Path, entries: list[Entry]) -> Path:
    """GNU format: long names, and names that are not UTF-8 kept as their bytes."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type, info.mode, info.uid, info.gid = entry.kind, entry.mode, entry.uid, entry.gid
            info.linkname = entry.link
            info.devmajor, info.devminor = entry.dev
            info.mtime = EPOCH
            info.size = len(entry.data) if entry.kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(entry.data) if entry.kind == tarfile.REGTYPE else None)
    return path


def root_entries(notes: str = "my notes") -> list[Entry]:
    """Every kind the layout carries: directories (a sticky and a setgid one), setuid and setgid
    files, a hard link, a symlink, devices, a fifo, a name with a space (`notes`) and the kernel
    config the feature profile is chosen by."""
    return [
        directory("./"),
        directory("./boot/"),
        Entry(f"./boot/config-{RELEASE}", data=KERNEL_CONFIG),
        directory("./etc/"),
        Entry("./etc/motd", data=b"hello\n"),
        Entry("./etc/motd.hard", tarfile.LNKTYPE, link="./etc/motd"),
        Entry(f"./etc/{notes}", mode=0o600, data=b"notes\n", uid=1000, gid=1000),
        directory("./dev/"),
        Entry("./dev/null", tarfile.CHRTYPE, 0o666, dev=(1, 3)),
        Entry("./dev/sda", tarfile.BLKTYPE, 0o660, gid=6, dev=(8, 16)),
        directory("./run/"),
        Entry("./run/initctl", tarfile.FIFOTYPE, 0o600),
        directory("./tmp/", 0o1777),
        directory("./usr/"),
        directory("./usr/bin/"),
        Entry("./usr/bin/su", mode=0o4755, data=b"su\n"),
        Entry("./usr/bin/wall", mode=0o2755, data=b"wall\n", gid=5),
        Entry("./bin", tarfile.SYMTYPE, 0o777, link="usr/bin"),
        directory("./var/"),
        directory("./var/mail/", 0o2775, gid=8),
    ]


def expected_protofile(files: Path, notes: str = "my/notes") -> str:
    """root_entries' protofile: tar order, a "$" closing each directory, spaces as slashes, the
    hard link naming its target's content file, no sticky bit (the "777" of /tmp)."""
    return (
        "/dev/null\n"
        "0 0\n"
        "d--755 0 0\n"
        "boot d--755 0 0\n"
        f"config-{RELEASE} ---644 0 0 {files}/0\n"
        "$\n"
        "etc d--755 0 0\n"
        f"motd ---644 0 0 {files}/1\n"
        f"motd.hard ---644 0 0 {files}/1\n"
        f"{notes} ---600 1000 1000 {files}/2\n"
        "$\n"
        "dev d--755 0 0\n"
        "null c--666 0 0 1 3\n"
        "sda b--660 0 6 8 16\n"
        "$\n"
        "run d--755 0 0\n"
        "initctl p--600 0 0\n"
        "$\n"
        "tmp d--777 0 0\n"
        "$\n"
        "usr d--755 0 0\n"
        "bin d--755 0 0\n"
        f"su -u-755 0 0 {files}/3\n"
        f"wall --g755 0 5 {files}/4\n"
        "$\n"
        "$\n"
        "bin l--777 0 0 usr/bin\n"
        "var d--755 0 0\n"
        "mail d-g775 0 8\n"
        "$\n"
        "$\n"
        "$\n"
    )


def tree_of(tmp_path: Path, entries: list[Entry]) -> tuple[Path, Path]:
    """(the tar, the empty folder for content files) in tmp_path."""
    files = tmp_path / "files"
    files.mkdir()
    return write_tar(tmp_path / "root.tar", entries), files


# --- xfs_tree: the protofile -------------------------------------------------------------------------


def test_protofile_of_a_small_root_is_exactly_what_mkfs_xfs_reads(tmp_path: Path) -> None:
    tar, files = tree_of(tmp_path, root_entries())
    tree = xfs_tree(tar, files)
    assert tree.protofile == expected_protofile(files)
    assert tree.kernel_release == RELEASE
    assert tree.sticky == [("/tmp", 0o1777)]


def test_content_files_hold_the_tar_bytes_once_per_file_and_hard_links_share_them(tmp_path: Path) -> None:
    """The hard link becomes a copy made from the same content file: none is written for it, but
    its bytes count, since the image holds them twice."""
    tar, files = tree_of(tmp_path, root_entries())
    tree = xfs_tree(tar, files)
    assert {p.name: p.read_bytes() for p in files.iterdir()} == {
        "0": KERNEL_CONFIG, "1": b"hello\n", "2": b"notes\n", "3": b"su\n", "4": b"wall\n"}
    assert tree.content_bytes == sum(map(len, [KERNEL_CONFIG, b"hello\n", b"hello\n", b"notes\n", b"su\n", b"wall\n"]))


def test_root_without_its_own_entry_keeps_the_default_root_line(tmp_path: Path) -> None:
    tar, files = tree_of(tmp_path, [Entry("./etc/hostname", data=b"live\n")])
    tree = xfs_tree(tar, files)
    assert tree.protofile == f"/dev/null\n0 0\nd--755 0 0\netc d--755 0 0\nhostname ---644 0 0 {files}/0\n$\n$\n"
    assert tree.kernel_release is None


def test_the_root_entry_gives_the_root_its_owner_and_mode(tmp_path: Path) -> None:
    """mmdebstrap's tar starts with "./": its mode and owner are the root directory's line."""
    tar, files = tree_of(tmp_path, [Entry("./", tarfile.DIRTYPE, 0o750, uid=7, gid=9)])
    assert xfs_tree(tar, files).protofile == "/dev/null\n0 0\nd--750 7 9\n$\n"


def test_a_directory_listed_after_its_children_keeps_its_place_and_takes_its_own_line(tmp_path: Path) -> None:
    """A parent met first through a child gets a d--755 placeholder; its own entry, later, must
    replace that line without moving it or dropping the children."""
    tar, files = tree_of(tmp_path, [
        Entry("./opt/app/run.sh", mode=0o755, data=b"#!/bin/sh\n"),
        Entry("./opt/other", data=b"x"),
        Entry("./opt/app/", tarfile.DIRTYPE, 0o700, uid=1000, gid=1000),
    ])
    assert xfs_tree(tar, files).protofile == (
        "/dev/null\n0 0\nd--755 0 0\n"
        "opt d--755 0 0\n"
        "app d--700 1000 1000\n"
        f"run.sh ---755 0 0 {files}/0\n"
        "$\n"
        f"other ---644 0 0 {files}/1\n"
        "$\n"
        "$\n")


def test_names_without_the_leading_dot_slash_are_the_same_tree(tmp_path: Path) -> None:
    tar, files = tree_of(tmp_path, [directory("etc/"), Entry("etc/hostname", data=b"live\n")])
    assert xfs_tree(tar, files).protofile == (
        f"/dev/null\n0 0\nd--755 0 0\netc d--755 0 0\nhostname ---644 0 0 {files}/0\n$\n$\n")


def test_spaces_in_directory_and_file_names_become_slashes(tmp_path: Path) -> None:
    """mkfs.xfs reads slashes as spaces (slashes_are_spaces=1); a slash cannot be in a name, so
    nothing else is written as one. Also when the directory is first met through its child."""
    tar, files = tree_of(tmp_path, [directory("./srv/"), Entry("./srv/web root/index page.html", data=b"<p>\n"),
                                    directory("./srv/web root/", 0o750)])
    assert xfs_tree(tar, files).protofile == (
        "/dev/null\n0 0\nd--755 0 0\n"
        "srv d--755 0 0\n"
        "web/root d--750 0 0\n"
        f"index/page.html ---644 0 0 {files}/0\n"
        "$\n$\n$\n")


def test_setuid_setgid_and_sticky_together_on_a_directory(tmp_path: Path) -> None:
    """u and g go into the protofile mode, the sticky bit (with them) to xfs_db."""
    tar, files = tree_of(tmp_path, [directory("./shared/", 0o7770)])
    tree = xfs_tree(tar, files)
    assert tree.protofile.splitlines()[3] == "shared dug770 0 0"
    assert tree.sticky == [("/shared", 0o7770)]


def test_only_the_kernel_config_directly_in_boot_names_the_release(tmp_path: Path) -> None:
    """Later configs elsewhere (documentation, a boot loader's) must not take its place."""
    tar, files = tree_of(tmp_path, [Entry("./boot/config-6.12.38+deb13-amd64", data=KERNEL_CONFIG),
                                    Entry("./usr/share/doc/config-9.9", data=b"x"),
                                    Entry("./boot/grub/config-8.8", data=b"x")])
    assert xfs_tree(tar, files).kernel_release == "6.12.38+deb13-amd64"


@pytest.mark.parametrize("name", ["./etc/tab\there", "./etc/new\nline", "./etc/carriage\rreturn", "./etc/$",
                                  "./we\tird/inside"],
                         ids=["tab", "newline", "carriage-return", "dollar", "tab-in-a-directory"])
def test_names_the_protofile_cannot_hold_are_refused(tmp_path: Path, name: str) -> None:
    """A tab or newline would split the name into tokens, and "$" ends a directory: refused with
    the way out (ext4) rather than a broken image."""
    tar, files = tree_of(tmp_path, [Entry(name, data=b"x")])
    with pytest.raises(StageError, match=r'(?s)^filesystem="xfs": /.* mkfs\.xfs\'s protofile cannot hold; use ext4$'):
        xfs_tree(tar, files)


@pytest.mark.parametrize("target", ["/usr/share/my docs", "tab\ttarget"])
def test_symlink_targets_with_whitespace_are_refused(tmp_path: Path, target: str) -> None:
    """A target is not a name: slashes_are_spaces does not apply to it, so a space cannot be written."""
    tar, files = tree_of(tmp_path, [Entry("./etc/docs", tarfile.SYMTYPE, 0o777, link=target)])
    with pytest.raises(StageError, match=r'^filesystem="xfs": the symlink /etc/docs points at .*, which '
                                         r"mkfs\.xfs's protofile cannot hold; use ext4$"):
        xfs_tree(tar, files)


def test_a_hard_link_before_its_target_is_refused(tmp_path: Path) -> None:
    tar, files = tree_of(tmp_path, [Entry("./etc/a", tarfile.LNKTYPE, link="./etc/b"), Entry("./etc/b", data=b"x")])
    with pytest.raises(StageError, match=r"^/etc/a is a hard link to /(\./)?etc/b, which the tar has not had yet$"):
        xfs_tree(tar, files)


def test_a_directory_name_with_a_no_break_space_keeps_its_children(tmp_path: Path) -> None:
    """mkfs.xfs splits tokens on space, tab and newline only, so U+00A0 is an ordinary name byte;
    today the directory's children and its "$" are left out and later entries land inside it."""
    tar, files = tree_of(tmp_path, [directory("./a\u00a0b/"), Entry("./a\u00a0b/inner", data=b"in\n"),
                                    Entry("./z", data=b"z\n")])
    assert xfs_tree(tar, files).protofile == (
        "/dev/null\n0 0\nd--755 0 0\n"
        "a\u00a0b d--755 0 0\n"
        f"inner ---644 0 0 {files}/0\n"
        "$\n"
        f"z ---644 0 0 {files}/1\n"
        "$\n")


@pytest.mark.parametrize("entry", [Entry("./etc/:colon", data=b"x"),
                                   Entry("./etc/link", tarfile.SYMTYPE, 0o777, link=":colon")],
                         ids=["name", "symlink-target"])
def test_a_name_or_target_starting_with_a_colon_is_refused(tmp_path: Path, entry: Entry) -> None:
    tar, files = tree_of(tmp_path, [entry])
    with pytest.raises(StageError, match='filesystem="xfs"'):
        xfs_tree(tar, files)


def test_a_colon_inside_a_name_is_kept(tmp_path: Path) -> None:
    """Only a leading ':' starts a comment: systemd's and udev's "a:b" names must still pass."""
    tar, files = tree_of(tmp_path, [Entry("./etc/a:b", data=b"x")])
    assert f"\na:b ---644 0 0 {files}/0\n" in xfs_tree(tar, files).protofile


# --- image_size, lts_profile -------------------------------------------------------------------------


def test_image_size_is_content_with_a_quarter_more_a_block_per_entry_and_the_headroom() -> None:
    assert image_size(8 * MIB, 256) == 8 * MIB * 5 // 4 + 256 * 4096 + HEADROOM_BYTES == 779 * MIB
    assert image_size(0, 0) == HEADROOM_BYTES


def test_image_size_rounds_down_to_whole_mib() -> None:
    size = image_size(1000, 3)
    assert size % MIB == 0
    assert size == HEADROOM_BYTES  # 1250 + 12288 bytes do not make a MiB
    assert image_size(MIB, 0) == HEADROOM_BYTES + MIB  # 1.25 MiB, down to 1


@pytest.mark.parametrize(("release", "profile"), [
    ("6.1.0-41-amd64", "lts_6.1.conf"),
    ("6.12.38+deb13-amd64", "lts_6.12.conf"),
    ("5.10.0-30-amd64", "lts_5.10.conf"),  # numbers, not text: 5.10 is newer than 5.4
    ("5.9.16", "lts_5.4.conf"),
    ("6.5.0", "lts_6.1.conf"),
    ("4.19.0-27-amd64", "lts_4.19.conf"),
])
def test_lts_profile_is_the_newest_not_newer_than_the_kernel(release: str, profile: str) -> None:
    assert lts_profile(release, TRIXIE_PROFILES) == profile


def test_lts_profile_of_a_kernel_newer_than_every_profile_is_mkfs_xfs_defaults() -> None:
    assert lts_profile("6.16.3-amd64", TRIXIE_PROFILES) is None
    assert lts_profile("6.12.1", [name for name in TRIXIE_PROFILES if name != "lts_6.12.conf"]) is None


def test_lts_profile_ignores_files_that_are_not_lts_profiles() -> None:
    """Leftovers named like a 6.1 profile would otherwise be picked for a 6.1 kernel."""
    available = ["dax_x86_64.conf", "lts_6.1.conf.dpkg-old", "lts_6.1.conf~", "lts_5.15.conf", "lts_6.6.conf"]
    assert lts_profile("6.1.0", available) == "lts_5.15.conf"


def test_lts_profile_refuses_a_kernel_older_than_every_profile() -> None:
    with pytest.raises(StageError, match=r"^the image's kernel 4\.9\.0-19-amd64 is older than every mkfs\.xfs LTS"):
        lts_profile("4.9.0-19-amd64", TRIXIE_PROFILES)


def test_lts_profile_refuses_when_there_is_no_profile_at_all() -> None:
    with pytest.raises(StageError, match=r"has no LTS kernel profiles"):
        lts_profile("6.1.0", ["dax_x86_64.conf"])


def test_lts_profile_refuses_a_root_without_a_kernel_config() -> None:
    with pytest.raises(StageError, match=r'^filesystem="xfs": the root has no /boot/config-\*'):
        lts_profile(None, TRIXIE_PROFILES)


# --- command lines and environment -------------------------------------------------------------------


def test_mkfs_xfs_argv_with_a_profile(tmp_path: Path) -> None:
    image, protofile = tmp_path / "rootfs.img", tmp_path / "xfs.proto"
    assert mkfs_xfs_argv(image, protofile, VOLUME, "lts_6.1.conf") == [
        "mkfs.xfs", "-q", "-f",
        "-c", "options=/usr/share/xfsprogs/mkfs/lts_6.1.conf",
        "-L", "rootfs",
        "-m", f"uuid={VOLUME}",
        "-p", f"file={protofile},slashes_are_spaces=1",
        image,
    ]


def test_mkfs_xfs_argv_without_a_profile_has_no_config_option(tmp_path: Path) -> None:
    argv = mkfs_xfs_argv(tmp_path / "rootfs.img", tmp_path / "xfs.proto", VOLUME, None)
    assert "-c" not in argv
    assert argv[:3] == ["mkfs.xfs", "-q", "-f"]


def test_frozen_env_stops_the_clock_at_the_epoch_and_seeds_getrandom() -> None:
    assert frozen_env(EPOCH, "rootfs-key") == {
        "LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "FAKETIME": "2023-11-14 22:13:20",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKERANDOM_SEED": "0x" + hashlib.sha256(b"xfs\0rootfs-key").hexdigest()[:16],
        "TZ": "UTC",
    }


def test_frozen_env_is_the_same_for_the_same_root_and_seeded_differently_for_another() -> None:
    """The seed is what makes mkfs.xfs's random numbers repeatable; a seed shared by every root
    would make the generation numbers of unrelated images collide."""
    assert frozen_env(EPOCH, "rootfs-key") == frozen_env(EPOCH, "rootfs-key")
    seeds = {frozen_env(EPOCH, key)["FAKERANDOM_SEED"] for key in ("rootfs-key", "other-key", "third")}
    assert len(seeds) == 3
    assert all(re.fullmatch(r"0x[0-9a-f]{16}", seed) for seed in seeds)
    later = frozen_env(EPOCH + 1, "rootfs-key")
    assert later["FAKERANDOM_SEED"] == frozen_env(EPOCH, "rootfs-key")["FAKERANDOM_SEED"]
    assert later["FAKETIME"] == "2023-11-14 22:13:21"


@pytest.fixture
def berlin_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time is UTC+1 (a POSIX TZ, no tzdata needed), put back afterwards."""
    monkeypatch.setenv("TZ", "CET-1")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_frozen_env_time_is_utc_whatever_the_local_zone(berlin_time: None) -> None:
    """FAKETIME is read with TZ=UTC beside it: written in local time it would be an hour off here."""
    assert time.localtime(EPOCH).tm_hour == 23  # the zone took effect
    assert frozen_env(EPOCH, "k")["FAKETIME"] == "2023-11-14 22:13:20"
    assert frozen_env(0, "k")["FAKETIME"] == "1970-01-01 00:00:00"


def test_sticky_argv_sets_each_directory_mode_with_the_directory_type(tmp_path: Path) -> None:
    image = tmp_path / "rootfs.img"
    assert sticky_argv(image, [("/tmp", 0o1777), ("/var/spool/mail", 0o3775)]) == [
        "xfs_db", "-x",
        "-c", "path /tmp", "-c", "write core.mode 041777",
        "-c", "path /var/spool/mail", "-c", "write core.mode 043775",
        image,
    ]


def test_a_sticky_directory_with_a_space_reaches_xfs_db_as_one_argument(tmp_path: Path) -> None:
    """Refusing such a directory in xfs_tree would be a fix as well."""
    tar, files = tree_of(tmp_path, [directory("./tmp/", 0o1777), directory("./srv/"),
                                    directory("./srv/web root/", 0o1770)])
    try:
        tree = xfs_tree(tar, files)
    except StageError:
        return
    argv = [str(a) for a in sticky_argv(tmp_path / "rootfs.img", tree.sticky)]
    paths = [command for command in argv[3:-1:2] if command.startswith("path ")]
    assert len(paths) == 2
    assert all(len(command.split()) == 2 for command in paths), paths


# --- the squashfs stage with its tools recorded ------------------------------------------------------


XFS_OPTIONS = SquashfsOptions(filesystem=RootFilesystem.XFS, compression=Compression.ZSTD, erofs=None)


@dataclass
class Seen:
    """What the recorded mkfs.xfs found when it ran: the files it reads are gone afterwards."""

    protofile: str = ""
    image_bytes: int = -1
    sources: dict[str, bytes] = field(default_factory=dict)
    packs: list[str] = field(default_factory=list)


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The squashfs stage looks for LTS profiles here instead of the host's xfsprogs."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    for name in ("lts_5.15.conf", "lts_6.1.conf", "lts_6.6.conf", "dax_x86_64.conf"):
        (folder / name).write_text("[metadata]\n")
    monkeypatch.setattr(squashfs, "PROFILES", folder)
    return folder


def record_xfs(commands: Any, seen: Seen) -> None:
    """The recorder's mkfs.xfs keeps the protofile (names as their bytes, as mkfs.xfs reads
    them), the blank image's size and the content files; its gensquashfs the pack file."""

    def mkfs(call: Any, _stdout: Any) -> None:
        spec = call.argv[call.argv.index("-p") + 1]
        path = re.fullmatch(r"file=(.+),slashes_are_spaces=1", spec)
        assert path is not None, spec
        seen.protofile = Path(path.group(1)).read_bytes().decode("utf-8", "surrogateescape")
        seen.image_bytes = Path(call.argv[-1]).stat().st_size
        sources = re.findall(r" (/\S+/xfs-files/\d+)$", seen.protofile, re.MULTILINE)
        seen.sources = {source: Path(source).read_bytes() for source in sources}

    def gensquashfs(call: Any, _stdout: Any) -> None:
        seen.packs.append(Path(call.argv[2]).read_text())
        Path(call.argv[-1]).write_bytes(b"hsqs\n")

    commands.on("mkfs.xfs", mkfs)
    commands.on("gensquashfs", gensquashfs)


def run_xfs(publish: Callable[..., Path], make_request: Callable[..., StageRequest], workspace: Workspace,
            entries: list[Entry], tmp_path: Path) -> Outcome:
    publish("rootfs", {"root.tar": write_tar(tmp_path / "upload.tar", entries).read_bytes()})
    return squashfs.execute(make_request("squashfs", XFS_OPTIONS, {"rootfs": "rootfs-key"}), workspace)


def test_xfs_layout_runs_mkfs_xfs_then_xfs_db_then_gensquashfs(workspace, publish, make_request, commands, profiles,
                                                                 monkeypatch, tmp_path: Path) -> None:
    seen = Seen()
    record_xfs(commands, seen)

    outcome = run_xfs(publish, make_request, workspace, root_entries(), tmp_path)

    mkfs, xfs_db, gensquashfs = commands.calls
    inner = workspace.tmp / "rootfs.img"
    protofile = workspace.tmp / "xfs.proto"
    files = workspace.tmp / "xfs-files"
    assert mkfs.argv == [str(a) for a in mkfs_xfs_argv(inner, protofile, VOLUME, "lts_6.1.conf")]
    assert mkfs.env is not None
    assert {k: mkfs.env[k] for k in frozen_env(EPOCH, "rootfs-key")} == frozen_env(EPOCH, "rootfs-key")
    assert xfs_db.argv == ["xfs_db", "-x", "-c", "path /tmp", "-c", "write core.mode 041777", str(inner)]
    assert xfs_db.env == mkfs.env  # xfs_db -x stamps the inode it changes: the same frozen clock
    assert gensquashfs.argv[:3] == ["gensquashfs", "--pack-file", str(workspace.tmp / "pack.txt")]
    assert seen.packs == [f"dir /LiveOS 0755 0 0\nfile /LiveOS/rootfs.img 0644 0 0 {inner}\n"]

    assert seen.protofile == expected_protofile(files)
    entries = seen.protofile.count("\n")
    assert seen.image_bytes == image_size(len(KERNEL_CONFIG) + 12 + 6 + 3 + 5, entries)
    assert sorted(seen.sources.values()) == sorted([KERNEL_CONFIG, b"hello\n", b"notes\n", b"su\n", b"wall\n"])

    assert not inner.exists() and not files.exists()  # only the squashfs is an output
    assert sorted(p.name for p in (workspace.out / "LiveOS").iterdir()) == ["squashfs.img"]
    assert outcome.facts == {"filesystem": "xfs", "uuid": VOLUME}
    assert {"xfsprogs", "faketime"} <= set(outcome.tools)


def test_xfs_uuid_differs_from_the_ext4_one_of_the_same_root() -> None:
    assert volume_uuid("rootfs-key", "xfs") != volume_uuid("rootfs-key", "ext4")


def test_xfs_layout_without_sticky_directories_runs_no_xfs_db(workspace, publish, make_request, commands, profiles,
                                                               tmp_path: Path) -> None:
    record_xfs(commands, Seen())
    entries = [e for e in root_entries() if e.name != "./tmp/"]
    run_xfs(publish, make_request, workspace, entries, tmp_path)
    assert [argv[0] for argv in commands.argvs] == ["mkfs.xfs", "gensquashfs"]


def test_xfs_layout_uses_mkfs_defaults_for_a_kernel_newer_than_every_profile(
        workspace, publish, make_request, commands, profiles, tmp_path: Path) -> None:
    record_xfs(commands, Seen())
    entries = [Entry("./boot/config-6.12.38+deb13-amd64", data=KERNEL_CONFIG)]
    run_xfs(publish, make_request, workspace, entries, tmp_path)
    (mkfs,) = commands.tool_calls("mkfs.xfs")
    assert "-c" not in mkfs


@pytest.mark.parametrize(("entries", "message"), [
    ([Entry("./etc/hostname", data=b"live\n")], r"the root has no /boot/config-\*"),
    ([Entry("./boot/config-4.9.0-19-amd64", data=KERNEL_CONFIG)], r"kernel 4\.9\.0-19-amd64 is older than every"),
    ([Entry("./boot/config-6.1.0", data=KERNEL_CONFIG), Entry("./etc/a\tb")], r"/etc/a\tb has a name"),
], ids=["no-kernel-config", "old-kernel", "unwritable-name"])
def test_xfs_layout_refusals_run_no_tool(workspace, publish, make_request, commands, profiles, tmp_path: Path,
                                         entries: list[Entry], message: str) -> None:
    with pytest.raises(StageError, match=message):
        run_xfs(publish, make_request, workspace, entries, tmp_path)
    assert commands.calls == []


def test_ext4_layout_does_not_touch_xfs(workspace, publish, make_request, commands, profiles, tmp_path: Path) -> None:
    """filesystem="ext4" shares _image_in_squashfs with xfs: it must still take mke2fs's branch."""
    commands.on("mke2fs", lambda call, _: Path(call.argv[-2]).write_bytes(b"fake ext4\n"))
    commands.on("gensquashfs", lambda call, _: Path(call.argv[-1]).write_bytes(b"hsqs\n"))
    publish("rootfs", {"root.tar": write_tar(tmp_path / "upload.tar", root_entries()).read_bytes()})
    options = SquashfsOptions(filesystem=RootFilesystem.EXT4, compression=Compression.ZSTD, erofs=None)
    outcome = squashfs.execute(make_request("squashfs", options, {"rootfs": "rootfs-key"}), workspace)
    assert [argv[0] for argv in commands.argvs] == ["mke2fs", "gensquashfs"]
    assert not (workspace.tmp / "xfs.proto").exists()
    assert outcome.facts["filesystem"] == "ext4"


def test_a_name_that_is_not_utf8_reaches_mkfs_xfs_as_its_bytes(workspace, publish, make_request, commands, profiles,
                                                               tmp_path: Path) -> None:
    """mkfs.xfs reads names as bytes, as tar2sqfs and mke2fs do; a StageError would be a fix too."""
    seen = Seen()
    record_xfs(commands, seen)
    entries = [Entry("./boot/config-6.1.0", data=KERNEL_CONFIG), Entry("./etc/caf\udce9", data=b"x")]
    try:
        run_xfs(publish, make_request, workspace, entries, tmp_path)
    except StageError:
        return
    assert "\ncaf\udce9 ---644 0 0 " in seen.protofile


# --- the real mkfs.xfs and xfs_db, when the host has them --------------------------------------------


MKFS_XFS = shutil.which("mkfs.xfs")
XFS_DB = shutil.which("xfs_db")
needs_xfsprogs = pytest.mark.skipif(MKFS_XFS is None or XFS_DB is None,
                                    reason="the host has no xfsprogs (apt-get install xfsprogs)")
IMAGE_BYTES = 300 * MIB


def sparse(path: Path, size: int = IMAGE_BYTES) -> Path:
    with path.open("wb") as image:
        image.truncate(size)
    return path


@pytest.fixture(scope="session")
def slashes_are_spaces(tmp_path_factory: pytest.TempPathFactory) -> bool:
    """Whether the host's mkfs.xfs takes -p file=...,slashes_are_spaces=1 (xfsprogs 6.5 on; the
    stage image's trixie has it, bookworm's 6.1 reads only the plain -p FILE)."""
    if MKFS_XFS is None:
        return False
    folder = tmp_path_factory.mktemp("probe")
    (folder / "p").write_text("/dev/null\n0 0\nd--755 0 0\n$\n")
    probe = subprocess.run(["mkfs.xfs", "-q", "-f", "-p", f"file={folder / 'p'},slashes_are_spaces=1",
                            sparse(folder / "img")], capture_output=True, check=False)
    return probe.returncode == 0


def xfs_db(image: Path, *commands: str) -> str:
    argv = ["xfs_db", "-r", *(part for command in commands for part in ("-c", command)), str(image)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, env={**os.environ, "TZ": "UTC"})
    return done.stdout


def inode_field(image: Path, path: str, name: str) -> str:
    """One inode field as xfs_db prints it, e.g. inode_field(image, "/tmp", "core.mode") -> "041777"."""
    output = xfs_db(image, f"path {path}", f"print {name}")
    found = re.fullmatch(rf"{re.escape(name)} = (.*)\n", output)
    assert found is not None, output
    return found.group(1)


def listing(image: Path, folder: str) -> dict[str, str]:
    """{name: type} of a directory, without . and ..; names may hold spaces (xfs_db prints the
    name's length before it)."""
    names: dict[str, str] = {}
    for line in xfs_db(image, f"ls {folder}").splitlines()[1:]:
        found = re.match(r"\s*\d+\s+\d+\s+(\S+)\s+0x[0-9a-f]+\s+(\d+) (.*) \((good|corrupt)\)$", line)
        assert found is not None, line
        kind, length, rest, state = found.groups()
        assert state == "good", line
        names[rest[:int(length)]] = kind
    return {name: kind for name, kind in names.items() if name not in (".", "..")}


def content(image: Path, path: str) -> bytes:
    """A small file's bytes: its first data block in xfs_db's hex dump, cut to core.size."""
    size = int(inode_field(image, path, "core.size"))
    dump = xfs_db(image, f"path {path}", "dblock 0", "type text", "print")
    data = bytes(int(byte, 16) for line in dump.splitlines() for byte in line.split(":", 1)[1].split()[:16])
    return data[:size]


def check_root_image(image: Path, notes: str) -> None:
    """What root_entries must look like in the image mkfs.xfs made from their protofile."""
    assert listing(image, "/") == {"boot": "directory", "etc": "directory", "dev": "directory", "run": "directory",
                                   "tmp": "directory", "usr": "directory", "bin": "symlink", "var": "directory"}
    assert listing(image, "/etc") == {"motd": "regular", "motd.hard": "regular", notes: "regular"}
    assert listing(image, "/dev") == {"null": "chardev", "sda": "blkdev"}
    assert listing(image, "/run") == {"initctl": "fifo"}
    assert content(image, "/etc/motd") == content(image, "/etc/motd.hard") == b"hello\n"
    assert inode_field(image, "/etc/motd.hard", "core.nlinkv2") == "1"  # a copy, not a second name
    assert content(image, "/usr/bin/su") == b"su\n"
    assert content(image, f"/boot/config-{RELEASE}") == KERNEL_CONFIG
    assert inode_field(image, "/usr/bin/su", "core.mode") == "0104755"
    assert inode_field(image, "/usr/bin/wall", "core.mode") == "0102755"
    assert inode_field(image, "/usr/bin/wall", "core.gid") == "5"
    assert inode_field(image, "/var/mail", "core.mode") == "042775"
    assert inode_field(image, "/dev/sda", "core.mode") == "060660"
    assert inode_field(image, "/dev/sda", "u3.dev") == hex(8 << 18 | 16)  # IRIX_MKDEV(8, 16)
    assert inode_field(image, "/dev/null", "u3.dev") == hex(1 << 18 | 3)
    assert inode_field(image, "/run/initctl", "core.mode") == "010600"
    assert inode_field(image, "/bin", "u3.symlink") == '"usr/bin"'


def make_host_image(tmp_path: Path, env: dict[str, str] | None = None, name: str = "rootfs.img") -> Path:
    """root_entries (the space-free variant) through the plain `-p FILE` every mkfs.xfs reads,
    then the sticky bits through sticky_argv: the protofile's format checked on any xfsprogs. No
    feature profile: bookworm's 6.1 rejects its own lts_*.conf files (nrext64 under [metadata])."""
    work = tmp_path / name.removesuffix(".img")
    work.mkdir()
    tar, files = tree_of(work, root_entries(notes="my-notes"))
    tree = xfs_tree(tar, files)
    protofile = work / "xfs.proto"
    protofile.write_text(tree.protofile)
    image = sparse(tmp_path / name)
    argv = [str(a) for a in mkfs_xfs_argv(image, protofile, VOLUME, None)]
    argv[argv.index("-p") + 1] = str(protofile)
    subprocess.run(argv, check=True, env=env)
    subprocess.run([str(a) for a in sticky_argv(image, tree.sticky)], check=True, env=env, stdout=subprocess.DEVNULL)
    return image


@needs_xfsprogs
def test_host_mkfs_xfs_makes_the_tree_the_protofile_describes(tmp_path: Path) -> None:
    image = make_host_image(tmp_path)
    check_root_image(image, "my-notes")
    assert inode_field(image, "/tmp", "core.mode") == "041777"  # xfs_db's write: the sticky bit is there
    assert xfs_db(image, "label") == 'label = "rootfs"\n'
    assert xfs_db(image, "uuid") == f"UUID = {VOLUME}\n"


@needs_xfsprogs
def test_xfs_db_sticky_writes_leave_a_consistent_filesystem(tmp_path: Path) -> None:
    """xfs_db -x must recompute the inode's CRC: xfs_repair -n (no changes) finds nothing wrong."""
    image = make_host_image(tmp_path)
    check = subprocess.run(["xfs_repair", "-n", str(image)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr


@needs_xfsprogs
@pytest.mark.skipif(not Path(FAKETIME_LIBRARY).exists(),
                    reason="the host has no libfaketime (apt-get install faketime)")
def test_the_same_root_under_frozen_env_gives_the_same_image_bytes(tmp_path: Path) -> None:
    """Without the frozen clock every inode would carry the time of the run."""
    env = {**os.environ, **frozen_env(EPOCH, "rootfs-key")}
    first = make_host_image(tmp_path, env, "first.img")
    second = make_host_image(tmp_path, env, "second.img")
    digest = [hashlib.sha256(image.read_bytes()).hexdigest() for image in (first, second)]
    assert digest[0] == digest[1]
    assert inode_field(first, "/etc/motd", "core.ctime.sec") == time.asctime(time.gmtime(EPOCH))
    assert inode_field(first, "/tmp", "core.ctime.sec") == time.asctime(time.gmtime(EPOCH))


@needs_xfsprogs
def test_the_stage_makes_the_xfs_image_with_the_real_tools(tmp_path: Path, slashes_are_spaces: bool) -> None:
    """squashfs._xfs as the stage runs it: the protofile with slashes for spaces, the LTS profile
    for the kernel, the frozen environment and xfs_db's sticky bits."""
    if not slashes_are_spaces:
        pytest.skip("the host's mkfs.xfs has no -p file=...,slashes_are_spaces=1 (xfsprogs before 6.5)")
    if not [p for p in PROFILES.glob("lts_*.conf")]:
        pytest.skip(f"the host's xfsprogs has no LTS profiles in {PROFILES}")
    tar = write_tar(tmp_path / "root.tar", root_entries())
    image = tmp_path / "work" / "rootfs.img"
    image.parent.mkdir()
    squashfs._xfs(tar, EPOCH, VOLUME, image, "rootfs-key")
    check_root_image(image, "my notes")
    assert inode_field(image, "/tmp", "core.mode") == "041777"
    assert xfs_db(image, "uuid") == f"UUID = {VOLUME}\n"
    assert not (image.parent / "xfs-files").exists()
