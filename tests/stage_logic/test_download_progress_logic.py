"""resolve's download progress: bytes in apt's download folder over the lock's sizes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from liveorch.stages.contract import parse_progress
from liveorch.stages.download_progress import DownloadProgress, folder_bytes


def progress_lines(text: str) -> list[tuple[float, str]]:
    return [parsed for line in text.splitlines() if (parsed := parse_progress(line)) is not None]


def test_folder_bytes_counts_partial_files_too(tmp_path: Path) -> None:
    (tmp_path / "partial").mkdir()
    (tmp_path / "a.deb").write_bytes(b"x" * 300)
    (tmp_path / "partial" / "b.deb").write_bytes(b"y" * 50)
    assert folder_bytes(tmp_path) == 350
    assert folder_bytes(tmp_path / "missing") == 0


def test_progress_follows_the_bytes_written_and_ends_at_100(tmp_path: Path, capsys) -> None:
    with DownloadProgress(tmp_path, total=4 << 20, count=3, interval=0.01):
        (tmp_path / "a.deb").write_bytes(b"x" * (1 << 20))
        time.sleep(0.2)
        (tmp_path / "b.deb").write_bytes(b"x" * (2 << 20))
        time.sleep(0.2)
    lines = progress_lines(capsys.readouterr().out)
    percents = [percent for percent, _ in lines]
    assert 25.0 in percents and 75.0 in percents
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert lines[-1][1] == "downloading 3 packages: 4.0 of 4.0 MiB"


def test_a_failed_download_does_not_claim_100(tmp_path: Path, capsys) -> None:
    with pytest.raises(RuntimeError), DownloadProgress(tmp_path, total=1000, count=1, interval=0.01):
        (tmp_path / "a.deb").write_bytes(b"x" * 100)
        time.sleep(0.1)
        raise RuntimeError("apt-get download failed")
    assert [percent for percent, _ in progress_lines(capsys.readouterr().out)] == [10.0]
