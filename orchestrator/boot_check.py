"""`liveorch test` around a scripted boot: what is refused before QEMU starts, where the
transcript goes, and how the commands' results read. Kept apart from the CLI so the checks
and the report are plain functions a unit test calls."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from liveorch.orchestrator.boot import BootMode, kvm_problem
from liveorch.orchestrator.console import CommandResult
from liveorch.orchestrator.errors import CheckFailed, UsageError
from liveorch.orchestrator.target_files import check_target_names


def check_iso(iso: Path) -> None:
    """Refused before QEMU starts: QEMU would only say it exited before the login prompt."""
    if not iso.exists():
        raise UsageError(f"{iso}: no such ISO")
    if not iso.is_file():
        raise UsageError(f"{iso} is not a file (an ISO is expected)")
    if not os.access(iso, os.R_OK):
        raise UsageError(f"{iso}: cannot be read (permission denied)")


def require_kvm(device: Path = Path("/dev/kvm")) -> None:
    """--kvm is a promise of speed: when it cannot be kept, say so at once instead of falling
    back to an emulated boot many times slower."""
    problem = kvm_problem(device)
    if problem is not None:
        raise UsageError(f"--kvm: KVM is not usable here: {problem}",
                         hint="leave out --kvm to emulate the CPU; `liveorch doctor` says how to enable KVM")


def transcript_path(iso: Path, mode: BootMode, chosen: Path | None) -> Path | None:
    """Where the serial transcript goes: the chosen file, or `<ISO name>.<mode>.serial.log`
    beside the ISO (None when that directory is not writable: the ISO may be a read-only
    copy). Symlinks are refused as everywhere liveorch writes (target_files)."""
    path = chosen or iso.with_name(f"{iso.name.removesuffix('.iso')}.{mode.name}.serial.log")
    if chosen is None and not os.access(path.parent, os.W_OK):
        return None
    check_target_names(path.parent, [path.name])
    if chosen is not None and not path.parent.is_dir():
        raise UsageError(f"--transcript {chosen}: the directory {path.parent} does not exist")
    return path


def report_lines(results: Sequence[CommandResult]) -> list[str]:
    """Each command as typed, its output as printed, then its exit code."""
    lines: list[str] = []
    for result in results:
        lines.append(f"$ {result.command}")
        lines += result.output.rstrip("\n").splitlines() if result.output.strip() else []
        lines.append(f"[exit {result.exit_code}]")
    return lines


def check_results(results: Sequence[CommandResult]) -> None:
    """`test` fails when any command did: the exit code alone would not say which."""
    failed = [r for r in results if not r.ok]
    if failed:
        names = ", ".join(f"{r.command!r} (exit {r.exit_code})" for r in failed)
        raise CheckFailed(f"{len(failed)} of {len(results)} commands failed: {names}")
