"""Progress inside a stage: the line a stage prints, how each view shows it, and the metered
feed that turns reading the root tar into tar2sqfs's percent."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from liveorch.orchestrator.progress import JsonProgress, PlainProgress
from liveorch.stages.contract import PROGRESS_PREFIX, parse_progress, progress_line
from liveorch.stages.tools import Metered, StageError, run


def test_a_progress_line_round_trips() -> None:
    line = progress_line(41.6, "tar2sqfs: 1.20 of 2.90 GiB read")
    assert line == "liveorch-progress: 42 tar2sqfs: 1.20 of 2.90 GiB read"
    assert parse_progress(line) == (42.0, "tar2sqfs: 1.20 of 2.90 GiB read")
    assert parse_progress(progress_line(250, "over")) == (100.0, "over"), "clamped to 0..100"


@pytest.mark.parametrize("line", ["tar2sqfs: done", f"{PROGRESS_PREFIX}many files", f"{PROGRESS_PREFIX}-3 x",
                                  f"{PROGRESS_PREFIX}101 x", f"  {PROGRESS_PREFIX}10 indented"])
def test_other_lines_are_not_progress(line: str) -> None:
    assert parse_progress(line) is None


def test_plain_progress_prints_each_tenth_once() -> None:
    lines: list[str] = []
    progress = PlainProgress(write=lines.append, timestamps=False)
    for percent in (2, 4, 10, 12, 19, 21, 100):
        progress.advance("squashfs", percent, f"{percent} read")
    progress.advance("initrd", 50, "half")
    assert lines == ["[squashfs] 10% 10 read", "[squashfs] 21% 21 read", "[squashfs] 100% 100 read",
                     "[initrd] 50% half"]


def test_json_progress_emits_every_step() -> None:
    stream = io.StringIO()
    JsonProgress(stream).advance("squashfs", 33.33, "a third")
    event = json.loads(stream.getvalue())
    assert (event["event"], event["stage"], event["percent"], event["detail"]) == ("progress", "squashfs", 33.3,
                                                                                   "a third")


def test_a_metered_file_feeds_a_real_tool_and_reports_as_it_is_read(tmp_path: Path, capfd) -> None:
    source = tmp_path / "root.tar"
    source.write_bytes(bytes(range(256)) * 4096 * 5)  # 5 MiB: five 1 MiB reads
    copy = tmp_path / "copy"
    with Metered(source, "cat", step=20.0) as metered:
        run(["sh", "-c", f"cat > {copy}"], stdin=metered)
    assert copy.read_bytes() == source.read_bytes()
    steps = [parse_progress(line) for line in capfd.readouterr().out.splitlines()]
    assert [step[0] for step in steps if step] == [20.0, 40.0, 60.0, 80.0, 100.0]


def test_a_tool_that_stops_reading_fails_with_its_own_exit_code(tmp_path: Path) -> None:
    source = tmp_path / "root.tar"
    source.write_bytes(b"\0" * (8 << 20))
    with Metered(source, "head") as metered, pytest.raises(StageError, match="head failed with exit code 3"):
        run(["sh", "-c", "head -c 10 >/dev/null; exit 3"], stdin=metered, what="head")


def test_the_live_view_keeps_one_spinner_per_running_stage_and_shows_its_progress() -> None:
    """A Spinner made afresh on every render would always show its first frame."""
    from liveorch.orchestrator.progress import LiveProgress

    view = LiveProgress()
    try:
        view.stage("squashfs", "running")
        view._render()
        spinner = view.spinners["squashfs"]
        view._render()
        assert view.spinners["squashfs"] is spinner
        view.advance("squashfs", 42.0, "tar2sqfs: 0.28 of 0.67 GiB read")
        assert view.current["squashfs"] == " 42% tar2sqfs: 0.28 of 0.67 GiB read"
    finally:
        view.close()


@pytest.mark.parametrize("line", [
    "W: skipping bind-mounting ./dev/null",
    "W: cannot mount because CAP_SYS_ADMIN is not in the effective set",
    "unshare: unshare failed: Operation not permitted",
    "dracut: dracut module 'mksh' will not be installed, because command 'mksh' could not be found!",
    "dracut: Could not find 'strip'. Not stripping the initramfs.",
    "findmnt: can't read /proc/mounts: No such file or directory",
    "/usr/lib/dracut/modules.d/00systemd/module-setup.sh: line 170: /dev/fd/63: No such file or directory",
    "debconf: delaying package configuration, since apt-utils is not installed",
])
def test_known_noise_is_recognised(line: str) -> None:
    from liveorch.orchestrator.stage_noise import is_noise

    assert is_noise(line)


@pytest.mark.parametrize("line", [
    "I: running apt-get update...",
    "dracut: *** Including module: systemd ***",
    "liveorch-stage-error: dracut failed with exit code 1",
    "E: Unable to locate package vimm",
    "W: Some index files failed to download",
])
def test_real_messages_are_not_noise(line: str) -> None:
    from liveorch.orchestrator.stage_noise import is_noise

    assert not is_noise(line)


def test_the_live_view_shows_neither_noise_nor_raw_lines_over_a_stages_progress() -> None:
    from liveorch.orchestrator.progress import LiveProgress

    view = LiveProgress()
    try:
        view.stage("rootfs", "running")
        view.line("rootfs", "I: running apt-get update...")
        view.line("rootfs", "W: skipping mount proc")
        assert view.current["rootfs"] == "I: running apt-get update..."
        view.stage("initrd", "running")
        view.advance("initrd", 40.0, "dracut: module systemd")
        view.line("initrd", "dracut: *** Including module: systemd ***")
        assert view.current["initrd"] == " 40% dracut: module systemd"
    finally:
        view.close()
