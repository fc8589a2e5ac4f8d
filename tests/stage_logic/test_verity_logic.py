"""verity_blocks, the stage side: salt and UUID from the medium's identity, the blocks the tree
covers, veritysetup's command line and output, the VERITY_CONF the initrd sources, the newc
initramfs that carries it, GRUB loading two initrds, and the iso stage putting it together.
veritysetup is replaced by a recorder; the shell and (when installed) cpio are the host's."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from liveorch.stages import iso, verity
from liveorch.stages.contracts.iso import (
    INITRD_PATH,
    VERITY_CONF,
    VERITY_DEVICE,
    VERITY_INITRD_PATH,
    BootMenu,
    Firmware,
    MenuEntry,
    Terminal,
    TimeoutStyle,
    Verity,
)
from liveorch.stages.grub_config import loopback_config, menu_config
from liveorch.stages.tools import StageError

BLOCK = 4096
ROOT_HASH = "ab" * 32
SALT = "5a" * 32
TREE = verity.HashTree(root_hash=ROOT_HASH, salt=SALT, data_blocks=3, image_blocks=5)
KERNEL = b"MZ fake kernel\n"
INITRD = b"070701 fake initrd\n"
INPUTS = {"squashfs": "squashfs-key", "initrd": "initrd-key"}
CONF_NAMES = ["VERITY_MEDIUM_LABEL", "VERITY_IMAGE", "VERITY_TREE", "VERITY_DEVICE", "VERITY_ALGORITHM",
              "VERITY_BLOCK", "VERITY_ROOT_HASH", "VERITY_SALT", "VERITY_DATA_BLOCKS", "VERITY_IMAGE_BLOCKS"]
NEWC_HEADER = 110


def veritysetup_output(root_hash: str = ROOT_HASH) -> str:
    """What `veritysetup format --no-superblock` prints (cryptsetup 2.6)."""
    return ("VERITY header information for tree\n"
            "UUID:            \t\n"
            "Hash type:       \t1\n"
            "Data blocks:     \t3\n"
            "Data block size: \t4096\n"
            "Hash blocks:     \t1\n"
            "Hash block size: \t4096\n"
            "Hash algorithm:  \tsha256\n"
            f"Salt:            \t{SALT}\n"
            f"Root hash:      \t{root_hash}\n")


def image_of(tmp_path: Path, size: int, name: str = "rootfs.img") -> Path:
    image = tmp_path / name
    image.write_bytes(b"\xa5" * size)
    return image


# --- a newc reader, independent of the writer -------------------------------------------------------


@dataclass(frozen=True)
class NewcEntry:
    name: str
    inode: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    data: bytes
    offset: int


def read_newc(archive: bytes) -> list[NewcEntry]:
    """Every entry up to and including TRAILER!!!, checking the format as the kernel reads it:
    the magic, headers on 4-byte boundaries, NUL-terminated names, zero padding, no bytes after."""
    entries: list[NewcEntry] = []
    offset = 0
    while True:
        assert offset % 4 == 0, f"header at {offset} is not 4-byte aligned"
        header = archive[offset: offset + NEWC_HEADER]
        assert header[:6] == b"070701", header[:6]
        fields = [int(header[6 + 8 * i: 14 + 8 * i], 16) for i in range(13)]
        inode, mode, uid, gid, nlink, mtime, size, _, _, _, _, namesize, check = fields
        assert check == 0
        name_start = offset + NEWC_HEADER
        raw_name = archive[name_start: name_start + namesize]
        assert raw_name.endswith(b"\0") and b"\0" not in raw_name[:-1], raw_name
        data_start = name_start + namesize
        data_start += -data_start % 4
        assert archive[name_start + namesize: data_start] == b"\0" * (data_start - name_start - namesize)
        data = archive[data_start: data_start + size]
        assert len(data) == size
        entry = NewcEntry(raw_name[:-1].decode(), inode, mode, uid, gid, nlink, mtime, data, offset)
        entries.append(entry)
        offset = data_start + size
        padded = offset + -offset % 4
        assert archive[offset:padded] == b"\0" * (padded - offset)
        offset = padded
        if entry.name == "TRAILER!!!":
            assert offset == len(archive), "bytes after the trailer"
            return entries


# --- salt and UUID ------------------------------------------------------------------------------------


def test_salt_and_uuid_are_a_function_of_the_identity() -> None:
    """The same medium gets the same tree: rebuilds stay byte-identical."""
    assert verity.salt_and_uuid("a" * 64) == verity.salt_and_uuid("a" * 64)


def test_salt_and_uuid_change_with_the_identity() -> None:
    first, second = verity.salt_and_uuid("a" * 64), verity.salt_and_uuid("b" * 64)
    assert first[0] != second[0]
    assert first[1] != second[1]


def test_salt_and_uuid_have_veritysetups_formats() -> None:
    salt, volume = verity.salt_and_uuid("identity")
    assert re.fullmatch(r"[0-9a-f]{64}", salt)
    parsed = uuid.UUID(volume)
    assert str(parsed) == volume
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122


# --- the blocks the tree covers -------------------------------------------------------------------------


@pytest.mark.parametrize(("blocks", "expected"), [
    (None, (5, 5)),
    (1, (1, 5)),
    (3, (3, 5)),
    (5, (5, 5)),
    (6, (5, 5)),
    (10**12, (5, 5)),
])
def test_covered_blocks_caps_the_count_at_the_image(tmp_path: Path, blocks: int | None,
                                                    expected: tuple[int, int]) -> None:
    """A count past the image's end covers the whole image, never blocks that do not exist."""
    assert verity.covered_blocks(image_of(tmp_path, 5 * BLOCK), Verity(blocks)) == expected


@pytest.mark.parametrize("size", [1, BLOCK - 1, BLOCK + 1, 5 * BLOCK + 512])
def test_covered_blocks_refuses_a_partial_last_block(tmp_path: Path, size: int) -> None:
    """dm-verity maps whole blocks: a tail would be left outside the device unchecked."""
    with pytest.raises(StageError) as caught:
        verity.covered_blocks(image_of(tmp_path, size, "squashfs.img"), Verity(None))
    assert f"squashfs.img is {size} bytes, not a whole number of 4096-byte blocks" in str(caught.value)


# --- veritysetup ---------------------------------------------------------------------------------------


def test_veritysetup_argv_makes_a_superblockless_tree_with_the_given_salt(tmp_path: Path) -> None:
    image, tree = tmp_path / "rootfs.img", tmp_path / "rootfs.img.verity"
    volume = "12345678-1234-4234-8234-123456789abc"
    argv = verity.veritysetup_argv(image, tree, SALT, volume, 42)
    assert argv == ["veritysetup", "format", "--format=1", "--hash=sha256", "--data-block-size=4096",
                    "--hash-block-size=4096", "--data-blocks=42", "--no-superblock", f"--salt={SALT}",
                    f"--uuid={volume}", image, tree]


def test_parse_root_hash_reads_veritysetups_output() -> None:
    assert verity.parse_root_hash(veritysetup_output()) == ROOT_HASH


@pytest.mark.parametrize("output", [
    "",
    veritysetup_output().replace("Root hash", "Root digest"),
    veritysetup_output(ROOT_HASH[:-2]),
    veritysetup_output(ROOT_HASH + "00"),
    veritysetup_output("zz" * 32),
], ids=["empty", "no-root-hash-line", "short", "long", "not-hex"])
def test_parse_root_hash_refuses_output_without_a_sha256_root_hash(output: str) -> None:
    with pytest.raises(StageError, match="printed no root hash"):
        verity.parse_root_hash(output)


def test_make_hash_tree_runs_veritysetup_over_the_covered_blocks(tmp_path: Path, monkeypatch) -> None:
    calls: list[list[str]] = []

    def fake_capture(argv, **_: object) -> str:
        calls.append([str(a) for a in argv])
        return veritysetup_output()

    monkeypatch.setattr(verity, "capture", fake_capture)
    image, tree = image_of(tmp_path, 5 * BLOCK), tmp_path / "rootfs.img.verity"
    result = verity.make_hash_tree(image, tree, Verity(3), "identity")

    salt, volume = verity.salt_and_uuid("identity")
    assert result == verity.HashTree(root_hash=ROOT_HASH, salt=salt, data_blocks=3, image_blocks=5)
    assert calls == [[str(a) for a in verity.veritysetup_argv(image, tree, salt, volume, 3)]]


# --- VERITY_CONF, as the initrd's shell reads it -------------------------------------------------------


def sourced(conf: str, tmp_path: Path) -> dict[str, str]:
    """The variables after `. VERITY_CONF` in the host's sh (dash on Debian, like the initrd's)."""
    path = tmp_path / "verity.conf"
    path.write_text(conf)
    script = '. "$1"; shift; for name; do eval "printf \'%s\\0\' \\"\\$$name\\""; done'
    out = subprocess.run(["sh", "-c", script, "sh", str(path), *CONF_NAMES], check=True, capture_output=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    return dict(zip(CONF_NAMES, out.decode().split("\0")[:-1], strict=True))


def test_conf_text_gives_the_initrd_every_value(tmp_path: Path) -> None:
    assert sourced(verity.conf_text("rootfs.img", "BOOKWORM_LIVE", TREE), tmp_path) == {
        "VERITY_MEDIUM_LABEL": "BOOKWORM_LIVE",
        "VERITY_IMAGE": "LiveOS/rootfs.img",
        "VERITY_TREE": "LiveOS/rootfs.img.verity",
        "VERITY_DEVICE": VERITY_DEVICE,
        "VERITY_ALGORITHM": "sha256",
        "VERITY_BLOCK": "4096",
        "VERITY_ROOT_HASH": ROOT_HASH,
        "VERITY_SALT": SALT,
        "VERITY_DATA_BLOCKS": "3",
        "VERITY_IMAGE_BLOCKS": "5",
    }


@pytest.mark.parametrize("volid", ["MY LIVE 2", "it's live", 'say "hi"', "$HOME `id`; rm -rf x", "a\tb"],
                         ids=["space", "single-quote", "double-quote", "shell-syntax", "tab"])
def test_a_volid_with_shell_syntax_survives_sourcing(tmp_path: Path, volid: str) -> None:
    """The label is the user's volid: sourcing must give it back as is and run nothing
    (echo, as the verity script uses it; dash's echo would mangle backslashes, which a volid cannot hold)."""
    conf = verity.conf_text("squashfs.img", volid, TREE)
    assert sourced(conf, tmp_path)["VERITY_MEDIUM_LABEL"] == volid
    script = f'. "{tmp_path / "verity.conf"}"; echo "$VERITY_MEDIUM_LABEL"'
    echoed = subprocess.run(["sh", "-c", script], check=True, capture_output=True, text=True).stdout
    assert echoed == volid + "\n"


def test_a_backslash_survives_sourcing(tmp_path: Path) -> None:
    volid = "a\\x20b\\"
    assert sourced(verity.conf_text("squashfs.img", volid, TREE), tmp_path)["VERITY_MEDIUM_LABEL"] == volid


def test_conf_text_is_one_assignment_a_line() -> None:
    lines = verity.conf_text("squashfs.img", "MY LIVE", TREE).splitlines()
    assert [line.split("=", 1)[0] for line in lines] == CONF_NAMES


# --- the newc initramfs --------------------------------------------------------------------------------


FILES = {"etc/liveorch/verity.conf": b"VERITY_BLOCK=4096\n", "etc/hostname": b"odd-length\n", "top": b""}


def test_newc_cpio_holds_the_files_and_their_directories(epoch: int) -> None:
    entries = read_newc(verity.newc_cpio(FILES, epoch))
    assert [e.name for e in entries] == ["etc", "etc/liveorch", "etc/hostname", "etc/liveorch/verity.conf", "top",
                                         "TRAILER!!!"]
    *members, trailer = entries
    assert {e.name: e.mode for e in members} == {"etc": 0o040755, "etc/liveorch": 0o040755,
                                                  "etc/hostname": 0o100644, "etc/liveorch/verity.conf": 0o100644,
                                                  "top": 0o100644}
    assert {e.name: e.data for e in members if e.mode & 0o100000} == FILES
    assert all(e.data == b"" for e in members if e.mode & 0o040000)
    assert {(e.uid, e.gid, e.mtime) for e in members} == {(0, 0, epoch)}
    assert len({e.inode for e in members}) == len(members)  # the kernel would take equal ones as hard links
    assert 0 not in {e.inode for e in members}
    assert (trailer.mode, trailer.data) == (0, b"")


def test_newc_cpio_is_byte_identical_for_the_same_input(epoch: int) -> None:
    """Reproducible media: no clock, no host ids, no dict order in the archive."""
    reordered = dict(reversed(list(FILES.items())))
    assert verity.newc_cpio(FILES, epoch) == verity.newc_cpio(dict(FILES), epoch) == verity.newc_cpio(reordered, epoch)
    assert verity.newc_cpio(FILES, epoch) != verity.newc_cpio(FILES, epoch + 1)


def test_newc_cpio_of_nothing_is_a_lone_trailer(epoch: int) -> None:
    entries = read_newc(verity.newc_cpio({}, epoch))
    assert [e.name for e in entries] == ["TRAILER!!!"]


def test_newc_cpio_takes_a_non_ascii_name(epoch: int) -> None:
    entries = read_newc(verity.newc_cpio({"etc/caf\u00e9": b"x"}, epoch))
    assert [e.name for e in entries] == ["etc", "etc/caf\u00e9", "TRAILER!!!"]


needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="the host has no cpio (apt-get install cpio)")


@needs_cpio
def test_gnu_cpio_lists_and_extracts_the_archive(tmp_path: Path, epoch: int) -> None:
    archive = verity.newc_cpio(FILES, epoch)
    listing = subprocess.run(["cpio", "-t", "--quiet"], input=archive, check=True, capture_output=True).stdout
    assert listing.decode().splitlines() == ["etc", "etc/liveorch", "etc/hostname", "etc/liveorch/verity.conf", "top"]
    target = tmp_path / "root"
    target.mkdir()
    subprocess.run(["cpio", "-i", "-d", "-m", "--quiet"], input=archive, cwd=target, check=True)
    for name, data in FILES.items():
        assert (target / name).read_bytes() == data
        assert (target / name).stat().st_mode & 0o7777 == 0o644
        assert (target / name).stat().st_mtime == epoch
    assert (target / "etc/liveorch").is_dir()


@needs_cpio
def test_gnu_cpio_reads_the_verity_initramfs(tmp_path: Path, epoch: int) -> None:
    subprocess.run(["cpio", "-i", "-d", "--quiet"], input=verity.verity_initramfs("rootfs.img", "MY LIVE", TREE, epoch),
                   cwd=tmp_path, check=True)
    assert (tmp_path / VERITY_CONF).read_text() == verity.conf_text("rootfs.img", "MY LIVE", TREE)


def test_the_verity_initramfs_holds_only_verity_conf(epoch: int) -> None:
    entries = read_newc(verity.verity_initramfs("squashfs.img", "BOOKWORM_LIVE", TREE, epoch))
    assert [e.name for e in entries] == ["etc", "etc/liveorch", VERITY_CONF, "TRAILER!!!"]
    assert entries[2].data == verity.conf_text("squashfs.img", "BOOKWORM_LIVE", TREE).encode()


# --- GRUB loads both initrds ---------------------------------------------------------------------------


TWO_INITRDS = (INITRD_PATH, VERITY_INITRD_PATH)
INITRD_LINE = f"    initrd {INITRD_PATH} {VERITY_INITRD_PATH}"


def boot_menu() -> BootMenu:
    cmdline = f"root=live:/dev/mapper/{VERITY_DEVICE} rd.live.image"
    return BootMenu(Terminal.BOTH, 5, TimeoutStyle.MENU,
                    (MenuEntry("Live", cmdline), MenuEntry("Check", f"{cmdline} rd.liveorch.verity.check"),
                     MenuEntry("Live (failsafe)", f"{cmdline} nomodeset")),
                    f"iso-scan/filename=${{iso_path}} {cmdline}")


def test_menu_config_loads_the_verity_initrd_after_the_images_in_every_entry() -> None:
    """The second initramfs adds VERITY_CONF to what the first unpacks: its order matters."""
    lines = menu_config(boot_menu(), TWO_INITRDS).splitlines()
    assert [line for line in lines if line.lstrip().startswith("initrd")] == [INITRD_LINE] * 3


def test_loopback_config_loads_both_initrds() -> None:
    lines = loopback_config(boot_menu(), TWO_INITRDS).splitlines()
    assert [line for line in lines if line.lstrip().startswith("initrd")] == [INITRD_LINE]


def test_one_initrd_by_default() -> None:
    for text in (menu_config(boot_menu()), loopback_config(boot_menu())):
        assert {line for line in text.splitlines() if "initrd" in line} == {f"    initrd {INITRD_PATH}"}


# --- the iso stage with verity -------------------------------------------------------------------------


def fake_veritysetup(calls: list[list[str]]):
    """Stands in for capture(veritysetup ...): writes a placeholder tree, prints a root hash."""

    def capture(argv, **_: object) -> str:
        args = [str(a) for a in argv]
        calls.append(args)
        assert args[:2] == ["veritysetup", "format"]
        Path(args[-1]).write_bytes(b"fake hash tree\n")
        return veritysetup_output()

    return capture


def run_verity_iso(example_plan, publish, make_request, workspace, monkeypatch, live_files: dict[str, bytes],
                   blocks: int | None = None):
    calls: list[list[str]] = []
    monkeypatch.setattr(verity, "capture", fake_veritysetup(calls))
    squashfs_entry = publish("squashfs", live_files)
    publish("initrd", {"vmlinuz": KERNEL, "initrd.img": INITRD})
    options = dataclasses.replace(example_plan.options["iso"], firmware=Firmware.BIOS, verity=Verity(blocks))
    request = make_request("iso", options, INPUTS)
    outcome = iso.execute(request, workspace)
    return request, outcome, calls, squashfs_entry


def grafts_of(argv: list[str]) -> dict[str, str]:
    return dict(graft.split("=", 1) for graft in argv[argv.index("-graft-points") + 1:])


def test_the_iso_stage_grafts_the_tree_and_the_verity_initrd(example_plan, workspace, publish, make_request,
                                                             commands, monkeypatch, epoch) -> None:
    request, outcome, calls, entry = run_verity_iso(example_plan, publish, make_request, workspace, monkeypatch,
                                                    {"LiveOS/squashfs.img": b"\0" * (3 * BLOCK)})
    work = workspace.tmp / "grub"
    salt, volume = verity.salt_and_uuid(iso.medium_identity(request, workspace))
    assert calls == [[str(a) for a in verity.veritysetup_argv(entry / "LiveOS/squashfs.img",
                                                              work / "squashfs.img.verity", salt, volume, 3)]]
    (xorriso,) = commands.tool_calls("xorriso")
    grafts = grafts_of(xorriso)
    assert grafts["/LiveOS/squashfs.img.verity"] == str(work / "squashfs.img.verity")
    assert grafts[VERITY_INITRD_PATH] == str(work / "verity.cpio")
    tree = verity.HashTree(ROOT_HASH, salt, 3, 3)
    assert (work / "verity.cpio").read_bytes() == verity.verity_initramfs("squashfs.img", request.options.volid,
                                                                          tree, epoch)
    grub = workspace.tmp / "iso/boot/grub"
    assert (grub / "grub.cfg").read_text() == menu_config(request.options.menu, TWO_INITRDS)
    assert (grub / "loopback.cfg").read_text() == loopback_config(request.options.menu, TWO_INITRDS)
    assert "cryptsetup-bin" in outcome.tools


def test_the_iso_stage_covers_the_erofs_root_image_when_there_is_one(example_plan, workspace, publish,
                                                                     make_request, commands, monkeypatch) -> None:
    _, _, calls, entry = run_verity_iso(example_plan, publish, make_request, workspace, monkeypatch,
                                        {"LiveOS/rootfs.img": b"\0" * (4 * BLOCK)}, blocks=2)
    (call,) = calls
    assert call[-2:] == [str(entry / "LiveOS/rootfs.img"), str(workspace.tmp / "grub/rootfs.img.verity")]
    assert "--data-blocks=2" in call
    conf = read_newc((workspace.tmp / "grub/verity.cpio").read_bytes())[2].data.decode()
    assert "VERITY_IMAGE=LiveOS/rootfs.img\n" in conf
    assert "VERITY_DATA_BLOCKS=2\nVERITY_IMAGE_BLOCKS=4\n" in conf
    assert "/LiveOS/rootfs.img.verity" in grafts_of(commands.tool_calls("xorriso")[0])


def test_the_iso_stage_refuses_a_root_image_of_partial_blocks(example_plan, workspace, publish, make_request,
                                                             commands, monkeypatch) -> None:
    with pytest.raises(StageError, match="not a whole number of 4096-byte blocks"):
        run_verity_iso(example_plan, publish, make_request, workspace, monkeypatch,
                       {"LiveOS/squashfs.img": b"hsqs fake squashfs image\n"})
    assert commands.tool_calls("xorriso") == []


def test_the_iso_stage_without_verity_has_no_verity_files(example_plan, workspace, publish, make_request,
                                                          commands) -> None:
    publish("squashfs", {"LiveOS/squashfs.img": b"\0" * BLOCK})
    publish("initrd", {"vmlinuz": KERNEL, "initrd.img": INITRD})
    options = dataclasses.replace(example_plan.options["iso"], firmware=Firmware.BIOS)
    assert options.verity is None
    outcome = iso.execute(make_request("iso", options, INPUTS), workspace)
    grafts = grafts_of(commands.tool_calls("xorriso")[0])
    assert VERITY_INITRD_PATH not in grafts
    assert not [path for path in grafts if path.endswith(".verity")]
    assert "cryptsetup-bin" not in outcome.tools
    assert not (workspace.tmp / "grub/verity.cpio").exists()


VERITY_SCRIPT = Path(__file__).resolve().parents[2] / "stages/dracut/90liveorch-verity/liveorch-verity.sh"


@pytest.mark.parametrize(("root", "code"), [("live:CDLABEL=LIVE", 0), ("live:/dev/mapper/live-verity", 1)])
def test_the_initqueue_hook_leaves_other_roots_alone(root: str, code: int) -> None:
    """The hook runs in every initrd that has the module: without the verity initramfs a
    root that is not the verity device must boot as before, while the verity root stops."""
    harness = (f"getarg() {{ echo '{root}'; }}; getargbool() {{ return 1; }}; set -- settled; "
               f". '{VERITY_SCRIPT}'")
    completed = subprocess.run(["sh", "-c", harness], capture_output=True, text=True)
    assert completed.returncode == code, completed.stderr
    assert ("verity initramfs was not loaded" in completed.stderr) == bool(code)
