"""make_payload: the description's files as one deterministic tar; archive checks in parse_description."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from liveorch.orchestrator.description import Description, parse_description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.payload import Payload, make_payload
from liveorch.orchestrator.plan import make_plan
from liveorch.stages import rootfs as rootfs_stage
from liveorch.stages.contract import Workspace
from liveorch.stages.contracts.rootfs import PAYLOAD_FILE
from liveorch.stages.hooks import unpack_payload
from liveorch.stages.tools import StageError

SECRET = "liveorch-payload-secret-5f1c9e"
PACKAGES_WITH_ARCHIVE = """<packages type="image">
        <package name="linux-image-amd64"/>
        <package name="dracut"/>
        <package name="dracut-live"/>
        <archive name="extra.tar"/>
    </packages>"""

CONFIG_SH = "#!/bin/bash\nset -e\n. /.kconfig\nbaseSetRunlevel 3\n"
IMAGES_SH = "#!/bin/bash\necho images\n"


def _archive_bytes() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        member = tarfile.TarInfo("opt/extra/README")
        data = b"extra archive\n"
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def build_description(directory: Path, outside: Path, render: Callable[..., str]) -> Path:
    """A description directory with hooks, a nested root/ overlay, an escaping symlink and an archive."""
    directory.mkdir(parents=True)
    (directory / "config.xml").write_text(render(packages=PACKAGES_WITH_ARCHIVE))
    (directory / "config.sh").write_text(CONFIG_SH)
    (directory / "config.sh").chmod(0o755)
    (directory / "images.sh").write_text(IMAGES_SH)
    (directory / "images.sh").chmod(0o644)
    (directory / "extra.tar").write_bytes(_archive_bytes())
    (directory / "extra.tar").chmod(0o644)
    overlay = directory / "root"
    (overlay / "etc" / "systemd" / "system").mkdir(parents=True)
    (overlay / "usr" / "local" / "bin").mkdir(parents=True)
    (overlay / "etc" / "motd").write_text("welcome\n")
    (overlay / "etc" / "motd").chmod(0o644)
    (overlay / "etc" / "systemd" / "system" / "hello.service").write_text("[Unit]\nDescription=hello\n")
    (overlay / "etc" / "systemd" / "system" / "hello.service").chmod(0o644)
    (overlay / "usr" / "local" / "bin" / "hello").write_text("#!/bin/sh\necho hello\n")
    (overlay / "usr" / "local" / "bin" / "hello").chmod(0o750)
    (overlay / "etc" / "passwd-link").symlink_to("/etc/passwd")
    outside.write_text(SECRET + "\n")
    (overlay / "etc" / "secret-link").symlink_to(outside)
    (overlay / "etc" / "relative-link").symlink_to("motd")
    return directory


@pytest.fixture
def description_dir(tmp_path: Path, render: Callable[..., str]) -> Path:
    return build_description(tmp_path / "desc", tmp_path / "outside-secret.txt", render)


def payload_of(directory: Path) -> Payload:
    payload = make_payload(parse_description(directory))
    assert payload is not None
    return payload


def read_payload(payload: Payload) -> tuple[bytes, list[tarfile.TarInfo], dict[str, bytes]]:
    data = payload.file.read()
    payload.file.close()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        contents = {m.name: tar.extractfile(m).read() for m in members if m.isfile()}
    return data, members, contents


EXPECTED_NAMES = [
    "archives/extra.tar",
    "config.sh",
    "images.sh",
    "root",
    "root/etc",
    "root/etc/motd",
    "root/etc/passwd-link",
    "root/etc/relative-link",
    "root/etc/secret-link",
    "root/etc/systemd",
    "root/etc/systemd/system",
    "root/etc/systemd/system/hello.service",
    "root/usr",
    "root/usr/local",
    "root/usr/local/bin",
    "root/usr/local/bin/hello",
]


def test_entries_sorted_and_complete(description_dir: Path) -> None:
    payload = payload_of(description_dir)
    data, members, _ = read_payload(payload)
    names = [m.name for m in members]
    assert names == EXPECTED_NAMES
    assert names == sorted(names)
    assert payload.entries == len(EXPECTED_NAMES)
    assert payload.sha256 == hashlib.sha256(data).hexdigest()


def test_the_rootfs_stage_takes_the_payload_the_plan_hashed(description_dir: Path, tmp_path: Path) -> None:
    """The payload travels to the rootfs run alone, as files/payload.tar; the plan carries its
    sha256, against which the stage checks it before unpacking."""
    description = parse_description(description_dir)
    payload = make_payload(description)
    assert payload is not None
    options = make_plan(description, payload_sha256=payload.sha256).options["rootfs"]
    assert options.payload_sha256 == payload.sha256
    assert make_plan(description).options["rootfs"].payload_sha256 is None
    workspace = Workspace(store=tmp_path / "store", work=tmp_path / "work")
    workspace.files.mkdir(parents=True)
    handed = workspace.files / PAYLOAD_FILE
    data = payload.file.read()
    payload.file.close()
    handed.write_bytes(data)
    assert rootfs_stage._payload(workspace, options) == handed
    unpacked = workspace.tmp / "description"
    unpack_payload(handed, unpacked)
    assert (unpacked / "config.sh").read_text() == CONFIG_SH
    assert (unpacked / "archives" / "extra.tar").read_bytes() == _archive_bytes()
    assert (unpacked / "root" / "etc" / "relative-link").readlink() == Path("motd")
    handed.write_bytes(data + b"\0" * 512)
    with pytest.raises(StageError, match="not the one the plan hashed"):
        rootfs_stage._payload(workspace, options)
    handed.unlink()
    with pytest.raises(StageError, match="missing"):
        rootfs_stage._payload(workspace, options)


def test_owners_and_times_fixed(description_dir: Path) -> None:
    _, members, _ = read_payload(payload_of(description_dir))
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "root", "root"), member.name
        assert member.mtime == 0, member.name


def test_modes_kept(description_dir: Path) -> None:
    _, members, _ = read_payload(payload_of(description_dir))
    modes = {m.name: m.mode for m in members}
    assert modes["config.sh"] == 0o755
    assert modes["images.sh"] == 0o644
    assert modes["root/usr/local/bin/hello"] == 0o750
    assert modes["root/etc/motd"] == 0o644
    for name in ("root", "root/etc", "root/usr/local/bin"):
        relative = name.removeprefix("root").lstrip("/")
        on_disk = stat.S_IMODE((description_dir / "root" / relative).lstat().st_mode)
        assert modes[name] == on_disk, name


def test_types_and_contents(description_dir: Path) -> None:
    _, members, contents = read_payload(payload_of(description_dir))
    kinds = {m.name: m.type for m in members}
    assert kinds["root/etc"] == tarfile.DIRTYPE
    assert kinds["root/etc/motd"] == tarfile.REGTYPE
    assert contents["config.sh"] == CONFIG_SH.encode()
    assert contents["images.sh"] == IMAGES_SH.encode()
    assert contents["archives/extra.tar"] == _archive_bytes()
    assert contents["root/usr/local/bin/hello"] == b"#!/bin/sh\necho hello\n"
    assert contents["root/etc/systemd/system/hello.service"] == b"[Unit]\nDescription=hello\n"


def test_symlinks_kept_as_links_not_followed(description_dir: Path, tmp_path: Path) -> None:
    data, members, contents = read_payload(payload_of(description_dir))
    links = {m.name: m for m in members if m.issym()}
    assert {name: m.linkname for name, m in links.items()} == {
        "root/etc/passwd-link": "/etc/passwd",
        "root/etc/relative-link": "motd",
        "root/etc/secret-link": str(tmp_path / "outside-secret.txt"),
    }
    assert all(m.size == 0 for m in links.values())
    assert not set(links) & set(contents)
    assert SECRET.encode() not in data
    passwd = Path("/etc/passwd").read_bytes()
    assert passwd not in data
    first_line = passwd.splitlines()[0]
    assert first_line not in data


def test_same_bytes_for_two_builds_and_after_touching(description_dir: Path) -> None:
    first = payload_of(description_dir)
    second = payload_of(description_dir)
    assert first.sha256 == second.sha256
    for path in [description_dir, *description_dir.rglob("*")]:
        os.utime(path, (1_234_567_890, 1_234_567_890), follow_symlinks=False)
    touched = payload_of(description_dir)
    assert touched.sha256 == first.sha256
    for payload in (first, second, touched):
        payload.file.close()


def test_same_bytes_for_a_copy_elsewhere(description_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "deeper" / "copy"
    shutil.copytree(description_dir, copy, symlinks=True)
    assert payload_of(copy).sha256 == payload_of(description_dir).sha256


def test_content_change_changes_the_sha(description_dir: Path) -> None:
    before = payload_of(description_dir).sha256
    (description_dir / "root" / "etc" / "motd").write_text("welcome!\n")
    after_overlay = payload_of(description_dir).sha256
    assert after_overlay != before
    with (description_dir / "config.sh").open("a") as handle:
        handle.write("# changed\n")
    assert payload_of(description_dir).sha256 not in (before, after_overlay)


def test_mode_change_changes_the_sha(description_dir: Path) -> None:
    before = payload_of(description_dir).sha256
    (description_dir / "images.sh").chmod(0o755)
    assert payload_of(description_dir).sha256 != before


def test_fifo_is_refused_with_its_name(description_dir: Path) -> None:
    os.mkfifo(description_dir / "root" / "etc" / "pipe")
    description = parse_description(description_dir)
    with pytest.raises(DescriptionError) as caught:
        make_payload(description)
    message = str(caught.value)
    assert "root/etc/pipe" in message
    assert "pipes" in message
    assert message.startswith(f"{description.path}: ")


def test_symlinked_hook_is_refused(tmp_path: Path, render: Callable[..., str]) -> None:
    directory = tmp_path / "desc"
    directory.mkdir()
    (directory / "config.xml").write_text(render())
    (tmp_path / "real.sh").write_text("#!/bin/sh\n")
    (directory / "config.sh").symlink_to(tmp_path / "real.sh")
    with pytest.raises(DescriptionError, match=r"config\.sh must be a regular file"):
        make_payload(parse_description(directory))


def test_description_without_files_has_no_payload(tmp_path: Path, render: Callable[..., str]) -> None:
    (tmp_path / "config.xml").write_text(render())
    (tmp_path / "notes.txt").write_text("not part of the payload\n")
    description = parse_description(tmp_path)
    assert description.hooks == []
    assert description.overlay is None
    assert description.archives == []
    assert make_payload(description) is None


def test_only_one_hook(tmp_path: Path, render: Callable[..., str]) -> None:
    (tmp_path / "config.xml").write_text(render())
    (tmp_path / "images.sh").write_text(IMAGES_SH)
    _, members, contents = read_payload(payload_of(tmp_path))
    assert [m.name for m in members] == ["images.sh"]
    assert contents == {"images.sh": IMAGES_SH.encode()}


def test_kiwi_features_example(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "kiwi-features"
    description: Description = parse_description(example, profiles=("Live",),
                                                 overrides=Overrides(set_repo="http://deb.debian.org/debian"))
    assert description.archives == ["extra.tar"]
    _, members, contents = read_payload(make_payload(description))
    names = [m.name for m in members]
    assert names[:3] == ["archives/extra.tar", "config.sh", "images.sh"]
    assert "root/usr/local/bin/liveorch-hello" in names
    assert "root/etc/systemd/system/liveorch-hello.service" in names
    assert contents["config.sh"] == (example / "config.sh").read_bytes()


def test_symlinked_overlay_does_not_pull_host_files_in(tmp_path: Path, render: Callable[..., str]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text(SECRET + "\n")
    directory = tmp_path / "desc"
    directory.mkdir()
    (directory / "config.xml").write_text(render())
    (directory / "root").symlink_to(outside)
    try:
        payload = make_payload(parse_description(directory))
    except DescriptionError:
        return  # refusing the symlinked overlay is fine too
    assert payload is not None
    data, members, _ = read_payload(payload)
    assert SECRET.encode() not in data
    assert "root/secret" not in [m.name for m in members]


# --- <archive> checks in parse_description ------------------------------------------------------


def _with_archive(render: Callable[..., str], name: str) -> str:
    return render(packages=PACKAGES_WITH_ARCHIVE.replace('"extra.tar"', f'"{name}"'))


def test_missing_archive(write_description, line, render) -> None:
    path = write_description(text=_with_archive(render, "missing.tar"))
    with pytest.raises(DescriptionError) as caught:
        parse_description(path)
    assert str(caught.value) == (f"{path}:{line(path, '<archive')}: archive 'missing.tar' not found beside "
                                 "the description")


@pytest.mark.parametrize("name", ["/etc/passwd", "../extra.tar", "sub/../../extra.tar", ""])
def test_archive_outside_the_description_is_refused(write_description, line, render, tmp_path: Path,
                                                     name: str) -> None:
    (tmp_path.parent / "extra.tar").write_bytes(_archive_bytes())
    path = write_description(text=_with_archive(render, name))
    with pytest.raises(DescriptionError) as caught:
        parse_description(path)
    assert str(caught.value) == (f"{path}:{line(path, '<archive')}: <archive name={name!r}> must name a file in "
                                 "the description directory")


def test_archive_in_a_subdirectory(tmp_path: Path, render: Callable[..., str]) -> None:
    (tmp_path / "archives").mkdir()
    (tmp_path / "archives" / "extra.tar").write_bytes(_archive_bytes())
    (tmp_path / "config.xml").write_text(_with_archive(render, "archives/extra.tar"))
    description = parse_description(tmp_path)
    assert description.archives == ["archives/extra.tar"]
    _, members, contents = read_payload(payload_of(tmp_path))
    assert [m.name for m in members] == ["archives/archives/extra.tar"]
    assert contents["archives/archives/extra.tar"] == _archive_bytes()
