"""Progress of a download whose total is known in advance (the lock's sizes), by watching
the folder the downloader writes into.

apt-get says nothing useful while it downloads (its progress bar needs a terminal), but the
package sizes are in the index records: the bytes in its download folder, partial files
included, over the sum of the sizes is the stage's progress.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

from liveorch.stages.tools import report_progress

MIB = 1 << 20


def folder_bytes(folder: Path) -> int:
    """Bytes under `folder`; files that vanish while counted (apt renames partial files) count 0."""
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except FileNotFoundError:
            continue
    return total


class DownloadProgress:
    """Reports progress lines from a background thread while the block runs; the last line
    (100%) is written when the block ends without an error."""

    def __init__(self, folder: Path, total: int, count: int, interval: float = 0.5, step: float = 2.0) -> None:
        self.folder, self.total, self.count = folder, max(total, 1), count
        self.interval, self.step = interval, step
        self.shown = -step
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="download-progress", daemon=True)

    def _line(self, done: int) -> None:
        percent = min(100.0, 100.0 * done / self.total)
        if percent - self.shown >= self.step or (percent >= 100.0 and self.shown < 100.0):
            self.shown = percent
            report_progress(percent, f"downloading {self.count} packages: "
                                     f"{min(done, self.total) / MIB:.1f} of {self.total / MIB:.1f} MiB")

    def _watch(self) -> None:
        while not self.stop.wait(self.interval):
            self._line(folder_bytes(self.folder))

    def __enter__(self) -> DownloadProgress:
        self.thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, _value: BaseException | None,
                 _trace: TracebackType | None) -> None:
        self.stop.set()
        self.thread.join()
        if kind is None:
            self._line(self.total)
