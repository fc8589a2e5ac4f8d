"""report.json's dpkg --verify check counts the files listed in .verified, not its header."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from liveorch.orchestrator.report import _verified_lines
from liveorch.stages.package_info import VERIFIED_HEADER


def test_the_header_is_not_counted_as_differing_files(tmp_path: Path) -> None:
    plan = SimpleNamespace(basename="demo.x86_64-1.0.0")
    report = SimpleNamespace(iso=tmp_path / "demo.x86_64-1.0.0.iso")
    verified = tmp_path / "demo.x86_64-1.0.0.verified"
    assert _verified_lines(report, plan) == 0  # type: ignore[arg-type]
    verified.write_text(VERIFIED_HEADER)
    assert _verified_lines(report, plan) == 0  # type: ignore[arg-type]
    verified.write_text(VERIFIED_HEADER + "??5?????? c /etc/motd\n")
    assert _verified_lines(report, plan) == 1  # type: ignore[arg-type]
