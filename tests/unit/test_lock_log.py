"""A failed `lock` builds in a temporary directory that is deleted on the way out: its log is
kept beside the lock (else in the current directory), and the hint names the kept copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveorch.orchestrator.cli import _keep_log
from liveorch.orchestrator.errors import StageFailed


def _failed(tmp_path: Path) -> tuple[StageFailed, Path]:
    log = tmp_path / "tmp" / "demo.x86_64-1.0.0.20250101T000000Z.log"
    log.parent.mkdir()
    log.write_text("resolve: E: Unable to locate package vim-nox\n")
    error = StageFailed("the resolve stage failed", hint=f"E: Unable to locate package vim-nox\nfull log: {log}")
    return error, log


def test_the_log_is_kept_beside_the_lock(tmp_path: Path) -> None:
    error, log = _failed(tmp_path)
    (tmp_path / "desc").mkdir()
    _keep_log(error, log, tmp_path / "desc" / "demo.lock")
    kept = list((tmp_path / "desc").glob("demo.lock.*.log"))
    assert len(kept) == 1 and kept[0].read_text() == log.read_text()
    assert error.hint is not None
    assert error.hint.splitlines() == ["E: Unable to locate package vim-nox", f"full log: {kept[0]}"]
    assert str(log) not in error.hint, "never point at the file about to be deleted"


def test_an_unwritable_lock_directory_keeps_it_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error, log = _failed(tmp_path)
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    _keep_log(error, log, tmp_path / "missing" / "demo.lock")
    kept = list((tmp_path / "here").glob("demo.lock.*.log"))
    assert len(kept) == 1
    assert error.hint is not None and error.hint.endswith(f"full log: {kept[0].name}")


def test_no_log_no_change(tmp_path: Path) -> None:
    error = StageFailed("the engine went away", hint="retry")
    _keep_log(error, None, tmp_path / "demo.lock")
    assert error.hint == "retry" and not list(tmp_path.iterdir())
