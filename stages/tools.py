"""Small helpers every stage uses: running tools, checksums, versions."""

from __future__ import annotations

import contextlib
import hashlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from liveorch.stages.contract import progress_line


class StageError(Exception):
    """A failure the user can act on; its message is shown as the stage's one-line error."""


def log(message: str) -> None:
    print(message, flush=True)


def report_progress(percent: float, detail: str) -> None:
    """A progress line for the orchestrator's view (contract.PROGRESS_PREFIX)."""
    print(progress_line(percent, detail), flush=True)


class Metered:
    """A file fed to a tool's stdin that reports how much of it has been read: for a tool that
    works as it reads (tar2sqfs), that is the stage's progress. `run` copies it through a pipe."""

    def __init__(self, path: Path, what: str, step: float = 2.0) -> None:
        self.name, self.what, self.step = str(path), what, step
        self.total = path.stat().st_size
        self.done, self.shown = 0, -step
        self.handle = path.open("rb")

    def __enter__(self) -> Metered:
        return self

    def __exit__(self, *_: object) -> None:
        self.handle.close()

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.done += len(chunk)
        percent = 100.0 * self.done / self.total if self.total else 100.0
        if chunk and (percent - self.shown >= self.step or self.done == self.total):
            self.shown = percent
            gib = 1 << 30
            report_progress(percent, f"{self.what}: {self.done / gib:.2f} of {self.total / gib:.2f} GiB read")
        return chunk


def _run_metered(args: list[str], env: Mapping[str, str] | None, cwd: Path | None, stdin: Metered,
                 stdout: Any) -> int:
    with subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=stdout or sys.stdout,
                          stderr=sys.stderr) as process:
        assert process.stdin is not None
        try:
            shutil.copyfileobj(stdin, process.stdin, 1 << 20)  # type: ignore[misc]
        except BrokenPipeError:
            pass  # the tool stopped reading: its exit code and message say why
        finally:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
    return process.returncode


def _run_watched(args: list[str], env: Mapping[str, str] | None, cwd: Path | None,
                 watch: Callable[[str], None]) -> int:
    """The tool's output (stdout and stderr) goes to the log line by line, each line also to
    `watch`, which turns a tool's own step messages into progress lines."""
    with subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace") as process:
        assert process.stdout is not None
        for line in process.stdout:
            log(line.rstrip("\n"))
            watch(line)
    return process.returncode


def run(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: Any = None,
    stdout: Any = None,
    what: str | None = None,
    watch: Callable[[str], None] | None = None,
) -> None:
    """Run a tool, streaming its output into the stage log; fail with a short message."""
    args = [str(a) for a in argv]
    log("+ " + shlex.join(args))
    if watch is not None:
        code = _run_watched(args, env, cwd, watch)
    elif isinstance(stdin, Metered):
        code = _run_metered(args, env, cwd, stdin, stdout)
    else:
        code = subprocess.run(args, env=env, cwd=cwd, stdin=stdin, stdout=stdout or sys.stdout,
                              stderr=sys.stderr).returncode
    if code != 0:
        raise StageError(f"{what or args[0]} failed with exit code {code}")


def capture(argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None) -> str:
    completed = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise StageError(f"{argv[0]} failed: {completed.stderr.strip().splitlines()[-1:] or completed.returncode}")
    return completed.stdout


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def copy_checked(source: Path, target: Path, sha256: str) -> None:
    """Copy a file and check its bytes on the way: the copy is what gets used."""
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            writer.write(chunk)
    if digest.hexdigest() != sha256:
        target.unlink()
        raise StageError(f"sha256 mismatch for {source.name}: expected {sha256}")


def package_version(*packages: str) -> dict[str, str]:
    """Versions of the Debian packages that provide a stage's tools (they end up in the bytes)."""
    out = capture(["dpkg-query", "-W", "-f=${Package} ${Version}\\n", *packages])
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def fresh_dir(path: Path) -> Path:
    """An empty directory at `path` (a rerun in the same scratch volume starts clean)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
