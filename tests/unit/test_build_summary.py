"""The end of `liveorch run`: the stages once, what was written, and what to try next."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveorch.orchestrator.pipeline import StageReport
from liveorch.orchestrator.report import BuildReport
from liveorch.orchestrator.summary import print_summary
from liveorch.stages.contract import Record


def _report(target: Path) -> BuildReport:
    base = "demo.x86_64-1.0.0"
    files = [target / f"{base}.iso", target / f"{base}.report.json", target / f"{base}.report.html",
             target / "demo.lock", target / f"{base}.20261206T050000Z.log"]
    for path in files:
        path.write_text("x")
    record = Record(stage="iso", key="k", outputs={}, tools={}, facts={}, seconds=2.0)
    return BuildReport(iso=files[0], sha256="ab" * 32, size=3 << 20, packages=167, seconds=98.0, log=files[-1],
                       stages=[StageReport("iso", "k", False, 2.0, record)], files=sorted(files))


def test_the_summary_lists_what_was_written_and_the_next_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    report = _report(tmp_path / "out")
    monkeypatch.chdir(tmp_path)

    print_summary(report)

    out = capsys.readouterr().out
    assert out.count("iso        built") == 1  # the stage table once
    block = out.split("\nwrote\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in block] == [
        "out/demo.lock", "out/demo.x86_64-1.0.0.20261206T050000Z.log", "out/demo.x86_64-1.0.0.iso",
        "out/demo.x86_64-1.0.0.report.html", "out/demo.x86_64-1.0.0.report.json"]
    assert "run --lock out/demo.lock" in block[0]  # said where the lock is written
    steps = out.split("\nnext\n")[1]
    assert "liveorch test out/demo.x86_64-1.0.0.iso " in steps
    assert "qemu-system-x86_64 -m 2048 -cdrom out/demo.x86_64-1.0.0.iso -serial stdio" in steps
    assert "out/demo.x86_64-1.0.0.report.html " in steps


def test_paths_outside_the_working_directory_stay_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "here").mkdir()
    report = _report(tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path / "here")
    print_summary(report)
    assert f"liveorch test {tmp_path}/elsewhere/demo.x86_64-1.0.0.iso" in capsys.readouterr().out


def test_the_lock_says_how_it_gets_used(tmp_path: Path) -> None:
    from liveorch.orchestrator.summary import lock_use_hint

    description = tmp_path / "desc"
    description.mkdir()
    (description / "config.xml").write_text("<image/>")
    beside = lock_use_hint(description / "demo.lock", description / "config.xml")
    assert beside.startswith("run uses it from beside the description")
    elsewhere = lock_use_hint(tmp_path / "out" / "demo.lock", None)
    assert "copy it beside the description or pass run --lock" in elsewhere and "demo.lock" in elsewhere
