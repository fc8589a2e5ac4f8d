"""`liveorch test` before and after the boot: what is refused before QEMU starts (a missing
ISO, a --kvm that cannot work, a command that is not one line), where the transcript goes,
and how the commands' results are reported. No QEMU is started."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from liveorch.orchestrator import boot, boot_check
from liveorch.orchestrator.boot import BootMode
from liveorch.orchestrator.boot_check import check_iso, check_results, report_lines, require_kvm, transcript_path
from liveorch.orchestrator.cli import app
from liveorch.orchestrator.console import CommandResult
from liveorch.orchestrator.errors import CheckFailed, TargetError, UsageError

CD = BootMode(uefi=False, disk=False)


def _one_error_line(output: str) -> str:
    lines = output.splitlines()
    assert "Traceback" not in output
    assert len([line for line in lines if line.startswith("liveorch: error:")]) == 1
    assert all(line.startswith("  ") for line in lines[1:]), "one line, then indented hints"
    return lines[0]


def test_a_missing_iso_is_one_line_naming_it_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "nope.iso"
    result = CliRunner().invoke(app, ["test", str(missing)])
    assert result.exit_code == 2
    assert _one_error_line(result.output) == f"liveorch: error: {missing}: no such ISO"


def test_a_directory_is_not_an_iso(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a file"):
        check_iso(tmp_path)


def test_kvm_that_does_not_open_is_refused(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.mkdir()  # opening a directory read-write fails, even for root
    with pytest.raises(UsageError, match=r"--kvm: KVM is not usable here: .*kvm does not open") as refused:
        require_kvm(device)
    assert refused.value.exit_code == 2 and "leave out --kvm" in (refused.value.hint or "")


def test_kvm_that_qemu_cannot_use_is_refused_before_booting(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine's case: /dev/kvm opens, QEMU aborts setting up the CPU."""
    iso = tmp_path / "live.iso"
    iso.write_bytes(b"")
    monkeypatch.setattr(boot_check, "kvm_problem",
                        lambda device=None: "QEMU cannot start a KVM guest (error: failed to set MSR 0x10a to 0x69)")
    monkeypatch.setattr(boot, "boot_and_login", lambda *a, **k: pytest.fail("no boot may start"))
    result = CliRunner().invoke(app, ["test", str(iso), "--kvm"])
    assert result.exit_code == 2
    assert _one_error_line(result.output) == ("liveorch: error: --kvm: KVM is not usable here: QEMU cannot start a "
                                              "KVM guest (error: failed to set MSR 0x10a to 0x69)")
    assert not list(tmp_path.glob("*.serial.log"))


def test_a_multi_line_command_is_refused(tmp_path: Path) -> None:
    iso = tmp_path / "live.iso"
    iso.write_bytes(b"")
    result = CliRunner().invoke(app, ["test", str(iso), "--command", "uname -r\nreboot"])
    assert result.exit_code == 2
    assert "must be one line" in _one_error_line(result.output)


def test_the_qemu_command_line_has_kvm_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(boot.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert "-enable-kvm" not in boot.qemu_argv(Path("live.iso"), CD)
    argv = boot.qemu_argv(Path("live.iso"), CD, kvm=True)
    assert argv[argv.index("-enable-kvm"):][:3] == ["-enable-kvm", "-cpu", "host"]


def test_the_transcript_goes_beside_the_iso_named_by_mode(tmp_path: Path) -> None:
    iso = tmp_path / "live.x86_64-1.0.iso"
    assert transcript_path(iso, CD, None) == tmp_path / "live.x86_64-1.0.bios-cd.serial.log"
    chosen = tmp_path / "boot.txt"
    assert transcript_path(iso, CD, chosen) == chosen


def test_no_transcript_beside_a_read_only_iso(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK)
    assert transcript_path(tmp_path / "live.iso", CD, None) is None


def test_a_symlinked_transcript_is_refused(tmp_path: Path) -> None:
    (tmp_path / "live.bios-cd.serial.log").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TargetError, match="is a symlink"):
        transcript_path(tmp_path / "live.iso", CD, None)


def test_a_transcript_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        transcript_path(tmp_path / "live.iso", CD, tmp_path / "no" / "boot.txt")


RESULTS = [CommandResult("uname -r", "6.1.0-57-amd64\n", 0), CommandResult("false", "", 1),
           CommandResult("systemctl is-system-running --wait || true", "degraded\n", 0)]


def test_each_command_is_shown_with_its_output_and_exit_code() -> None:
    assert report_lines(RESULTS) == ["$ uname -r", "6.1.0-57-amd64", "[exit 0]", "$ false", "[exit 1]",
                                     "$ systemctl is-system-running --wait || true", "degraded", "[exit 0]"]


def test_a_failed_command_fails_the_test_and_is_named() -> None:
    with pytest.raises(CheckFailed) as failed:
        check_results(RESULTS)
    assert failed.value.exit_code == 1
    assert failed.value.message == "1 of 3 commands failed: 'false' (exit 1)"
    check_results([RESULTS[0], RESULTS[2]])
