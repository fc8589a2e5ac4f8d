"""Small helpers every stage uses: running tools, checksums, versions."""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class StageError(Exception):
    """A failure the user can act on; its message is shown as the stage's one-line error."""


def log(message: str) -> None:
    print(message, flush=True)


def run(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdin: Any = None,
    stdout: Any = None,
    what: str | None = None,
) -> None:
    """Run a tool, streaming its output into the stage log; fail with a short message."""
    args = [str(a) for a in argv]
    log("+ " + shlex.join(args))
    completed = subprocess.run(args, env=env, cwd=cwd, stdin=stdin, stdout=stdout or sys.stdout, stderr=sys.stderr)
    if completed.returncode != 0:
        raise StageError(f"{what or args[0]} failed with exit code {completed.returncode}")


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
