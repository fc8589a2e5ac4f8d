"""dracut's step messages as the initrd stage's progress: forward only, one line per step."""

from __future__ import annotations

import pytest

from liveorch.stages import tools
from liveorch.stages.contract import parse_progress
from liveorch.stages.dracut_steps import MODULES_END, UNPACKED, DracutSteps

# What dracut 059 printed for the example (trimmed: module lines and steps kept, noise sampled).
TRANSCRIPT = """\
dracut: Executing: /usr/bin/dracut --reproducible --no-hostonly --no-compress --kver 6.1.0-57-amd64
dracut: dracut module 'mksh' will not be installed, because command 'mksh' could not be found!
dracut: *** Including module: systemd ***
/usr/lib/dracut/modules.d/00systemd/module-setup.sh: line 170: /dev/fd/63: No such file or directory
dracut: *** Including module: systemd-initrd ***
dracut: *** Including module: dmsquash-live ***
dracut: *** Including module: kernel-modules ***
dracut: *** Including module: shutdown ***
dracut: *** Including modules done ***
dracut: *** Installing kernel module dependencies ***
dracut: *** Installing kernel module dependencies done ***
dracut: *** Resolving executable dependencies ***
dracut: *** Resolving executable dependencies done ***
dracut: *** Hardlinking files ***
dracut: Mode:                     real
dracut: *** Hardlinking files done ***
dracut: Could not find 'strip'. Not stripping the initramfs.
dracut: *** Creating image file '/tmp/initrd.cpio' ***
dracut: *** Creating initramfs image file '/tmp/initrd.cpio' done ***
"""


def steps(capsys, lines: list[str]) -> list[tuple[float, str]]:
    watch = DracutSteps()
    for line in lines:
        watch(line + "\n")
    return [step for out in capsys.readouterr().out.splitlines() if (step := parse_progress(out)) is not None]


def test_each_module_and_step_moves_the_bar_forward(capsys) -> None:
    seen = steps(capsys, TRANSCRIPT.splitlines())
    assert [detail for _, detail in seen] == [
        "dracut: module systemd", "dracut: module systemd-initrd", "dracut: module dmsquash-live",
        "dracut: module kernel-modules", "dracut: module shutdown", "dracut: modules included",
        "dracut: kernel module dependencies", "dracut: executable dependencies", "dracut: hardlinking",
        "dracut: writing the cpio", "dracut: cpio written"]
    percents = [percent for percent, _ in seen]
    assert percents == sorted(percents) and len(set(percents)) == len(percents)
    assert percents[0] > UNPACKED and percents[5] == MODULES_END and percents[-1] == 80.0


def test_many_modules_stay_inside_their_band(capsys) -> None:
    seen = steps(capsys, [f"dracut: *** Including module: m{i} ***" for i in range(100)])
    assert len(seen) == 100
    assert max(percent for percent, _ in seen) < MODULES_END


def test_other_lines_report_nothing(capsys) -> None:
    assert steps(capsys, ["findmnt: can't read /proc/mounts", "dracut: Mode: real", ""]) == []


def test_run_hands_a_watcher_every_line_of_stdout_and_stderr(capsys) -> None:
    """tools.run with `watch`: the real subprocess path the initrd stage uses for dracut."""
    seen: list[str] = []
    tools.run(["sh", "-c", "echo one; echo two >&2; echo three"], watch=seen.append)
    assert seen == ["one\n", "two\n", "three\n"]
    assert capsys.readouterr().out.splitlines()[1:] == ["one", "two", "three"]  # also in the log


def test_run_with_a_watcher_still_fails_on_the_exit_code() -> None:
    with pytest.raises(tools.StageError, match="dracut failed with exit code 3"):
        tools.run(["sh", "-c", "exit 3"], watch=lambda _: None, what="dracut")
