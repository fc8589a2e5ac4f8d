"""target_files: nothing in the (untrusted) target directory is written through a symlink."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from liveorch.orchestrator.errors import TargetError
from liveorch.orchestrator.target_files import (
    atomic_writer,
    check_target_names,
    open_new_log,
    open_partial,
    publish_partial,
    replace_directory,
    write_file_atomic,
)

ISO = "unit-live.x86_64-1.2.3.iso"
VICTIM_TEXT = "precious host file\n"


@pytest.fixture
def target(tmp_path: Path) -> Path:
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim.txt"
    path.write_text(VICTIM_TEXT)
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_planted_symlink_at_the_iso_name_is_reported_and_left_alone(target: Path, victim: Path) -> None:
    (target / ISO).symlink_to(victim)
    with pytest.raises(TargetError) as caught:
        check_target_names(target, [f"{ISO}.sha256", ISO, "unit-live.lock"])
    assert str(caught.value) == (f"{target / ISO} is a symlink: liveorch does not write through or replace "
                                 "symlinks in the target directory (remove it)")
    assert caught.value.exit_code == 5
    assert (target / ISO).is_symlink()
    assert os.readlink(target / ISO) == str(victim)
    assert victim.read_text() == VICTIM_TEXT


def test_dangling_symlink_is_reported_too(target: Path, tmp_path: Path) -> None:
    (target / ISO).symlink_to(tmp_path / "does-not-exist")
    with pytest.raises(TargetError, match="is a symlink"):
        check_target_names(target, [ISO])
    assert not (tmp_path / "does-not-exist").exists()


def test_clean_names_pass(target: Path) -> None:
    (target / ISO).write_text("old iso\n")
    check_target_names(target, [ISO, "missing.lock"])
    check_target_names(target / "not-yet-created", [ISO])


def test_symlinked_target_directory_is_refused(tmp_path: Path, target: Path) -> None:
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(TargetError, match="is a symlink") as caught:
        check_target_names(tmp_path / "link", [ISO])
    assert caught.value.hint == f"pass the directory it points to: {target}"
    with pytest.raises(TargetError, match="is a symlink"):
        write_file_atomic(tmp_path / "link" / ISO, b"x")
    assert list(target.iterdir()) == []


def test_write_over_an_existing_file(target: Path) -> None:
    (target / ISO).write_text("old\n")
    (target / ISO).chmod(0o600)
    write_file_atomic(target / ISO, b"new bytes\n")
    assert (target / ISO).read_bytes() == b"new bytes\n"
    assert mode(target / ISO) == 0o644
    assert leftovers(target) == []
    write_file_atomic(target / "text", "é\n")
    assert (target / "text").read_bytes() == "é\n".encode()


def test_mode_ignores_the_umask(target: Path) -> None:
    old = os.umask(0o077)
    try:
        write_file_atomic(target / ISO, b"x")
        log, handle = open_new_log(target, "unit-live")
        handle.close()
        replace_directory(target / "bundle.pxe", lambda d: None)
    finally:
        os.umask(old)
    assert mode(target / ISO) == 0o644
    assert mode(log) == 0o644
    assert mode(target / "bundle.pxe") == 0o755


def test_publish_refuses_a_symlink_planted_during_the_build(target: Path, victim: Path) -> None:
    partial, handle = open_partial(target / ISO)
    with handle:
        handle.write(b"iso bytes")
    (target / ISO).symlink_to(victim)
    with pytest.raises(TargetError, match="is a symlink"):
        publish_partial(partial, target / ISO)
    assert os.readlink(target / ISO) == str(victim)
    assert victim.read_text() == VICTIM_TEXT
    assert leftovers(target) == []


def test_partial_name_is_fresh_and_never_followed(target: Path, victim: Path, monkeypatch) -> None:
    """A symlink planted at the temporary name is skipped (O_EXCL), not written through."""
    tokens = iter(["planted", "fresh"])
    monkeypatch.setattr("liveorch.orchestrator.target_files.secrets.token_hex", lambda _: next(tokens))
    planted = target / f".{ISO}.partial-planted"
    planted.symlink_to(victim)
    write_file_atomic(target / ISO, b"iso bytes")
    assert (target / ISO).read_bytes() == b"iso bytes"
    assert victim.read_text() == VICTIM_TEXT
    assert os.readlink(planted) == str(victim)
    assert leftovers(target) == [planted.name]


def test_partial_symlink_with_every_name_taken_is_an_error(target: Path, victim: Path, monkeypatch) -> None:
    monkeypatch.setattr("liveorch.orchestrator.target_files.secrets.token_hex", lambda _: "planted")
    (target / f".{ISO}.partial-planted").symlink_to(victim)
    with pytest.raises(TargetError, match="no free temporary name"):
        write_file_atomic(target / ISO, b"x")
    assert victim.read_text() == VICTIM_TEXT
    assert not (target / ISO).exists()


def test_exception_while_writing_leaves_nothing(target: Path) -> None:
    (target / ISO).write_text("previous\n")
    with pytest.raises(RuntimeError), atomic_writer(target / ISO) as handle:
        handle.write(b"half")
        raise RuntimeError("stage failed")
    assert (target / ISO).read_text() == "previous\n"
    assert leftovers(target) == []


def test_each_build_gets_a_new_log(target: Path) -> None:
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    first, handle = open_new_log(target, "unit-live.x86_64-1.2.3", now=now)
    with handle:
        handle.write("first build\n")
    second, handle = open_new_log(target, "unit-live.x86_64-1.2.3", now=now)
    with handle:
        handle.write("second build\n")
    assert first.name == "unit-live.x86_64-1.2.3.20240506T070809Z.log"
    assert second.name == "unit-live.x86_64-1.2.3.20240506T070809Z-1.log"
    assert first.read_text() == "first build\n"
    assert second.read_text() == "second build\n"


def test_log_time_is_utc(target: Path) -> None:
    from datetime import timedelta, timezone

    local = datetime(2024, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2)))
    path, handle = open_new_log(target, "x", now=local)
    handle.close()
    assert path.name == "x.20240506T070809Z.log"


def test_log_is_line_buffered(target: Path) -> None:
    path, handle = open_new_log(target, "x")
    with handle:
        handle.write("a line\n")
        assert path.read_text() == "a line\n"


def test_planted_log_symlinks_are_untouched(target: Path, victim: Path) -> None:
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    (target / "unit-live.log").symlink_to(victim)
    taken = target / "unit-live.20240506T070809Z.log"
    taken.symlink_to(victim)
    path, handle = open_new_log(target, "unit-live", now=now)
    with handle:
        handle.write("log\n")
    assert path.name == "unit-live.20240506T070809Z-1.log"
    assert not path.is_symlink()
    assert victim.read_text() == VICTIM_TEXT
    assert os.readlink(target / "unit-live.log") == str(victim)
    assert os.readlink(taken) == str(victim)


def fill_bundle(directory: Path) -> None:
    (directory / "vmlinuz").write_bytes(b"kernel")
    (directory / "boot").mkdir()
    (directory / "boot" / "ipxe").write_text("#!ipxe\n")


def test_replace_directory_creates_and_replaces(target: Path, victim: Path) -> None:
    bundle = target / "unit-live.x86_64-1.2.3.pxe"
    replace_directory(bundle, fill_bundle)
    assert (bundle / "boot" / "ipxe").read_text() == "#!ipxe\n"
    (bundle / "stale").write_text("from the last build\n")
    (bundle / "link").symlink_to(victim)
    replace_directory(bundle, lambda d: (d / "new").write_text("new\n"))
    assert sorted(p.name for p in bundle.iterdir()) == ["new"]
    assert victim.read_text() == VICTIM_TEXT
    assert leftovers(target) == []


def test_replace_directory_refuses_a_symlinked_target(target: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("keep\n")
    bundle = target / "unit-live.pxe"
    bundle.symlink_to(elsewhere)
    called = []
    with pytest.raises(TargetError, match="is a symlink"):
        replace_directory(bundle, called.append)
    assert called == []
    assert os.readlink(bundle) == str(elsewhere)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep"]
    assert leftovers(target) == []


def test_replace_directory_refuses_a_file_at_the_name(target: Path) -> None:
    (target / "unit-live.pxe").write_text("a file\n")
    with pytest.raises(TargetError, match="not a directory"):
        replace_directory(target / "unit-live.pxe", fill_bundle)
    assert (target / "unit-live.pxe").read_text() == "a file\n"


def test_replace_directory_cleans_up_when_fill_fails(target: Path) -> None:
    bundle = target / "unit-live.pxe"
    replace_directory(bundle, fill_bundle)

    def broken(directory: Path) -> None:
        fill_bundle(directory)
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError, match="export failed"):
        replace_directory(bundle, broken)
    assert (bundle / "vmlinuz").read_bytes() == b"kernel"
    assert leftovers(target) == []
