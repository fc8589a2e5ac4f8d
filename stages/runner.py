"""Runs one stage: request in, outputs plus a result record out, published atomically.

The stage writes into a private work directory that the orchestrator created for this
run; only when the stage succeeded is that directory renamed to its content-addressed
place, so a crashed or interrupted stage never leaves something that looks finished.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from liveorch.stages.contract import (
    REQUEST_FILE,
    RESULT_FILE,
    STAGES,
    Artifact,
    StageRequest,
    StageResult,
    stage_dir,
)
from liveorch.stages.tools import StageError, sha256_file

ERROR_PREFIX = "liveorch-stage-error: "


def _outputs(work: Path) -> dict[str, Artifact]:
    found: dict[str, Artifact] = {}
    for path in sorted(work.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name not in (REQUEST_FILE, RESULT_FILE):
            rel = path.relative_to(work).as_posix()
            found[rel] = Artifact(size=path.stat().st_size, sha256=sha256_file(path))
    return found


def _publish(work: Path, final: Path) -> None:
    """Move the finished work directory to its final name, replacing an older copy."""
    if final.exists():
        retired = final.with_name(f".retired-{final.name}-{uuid.uuid4().hex[:8]}")
        final.rename(retired)
        work.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        work.rename(final)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in STAGES:
        print(f"usage: python3 -m liveorch.stages {{{','.join(STAGES)}}} WORK_DIR", file=sys.stderr)
        return 2
    name, work = args[0], Path(args[1])
    started = time.monotonic()
    try:
        request = StageRequest.from_json((work / REQUEST_FILE).read_text())
        if request.stage != name:
            raise StageError(f"request is for stage {request.stage!r}, this image runs {name!r}")
        os.environ["SOURCE_DATE_EPOCH"] = str(request.source_date_epoch)
        os.environ["TZ"] = "UTC"
        os.umask(0o022)
        module = importlib.import_module(f"liveorch.stages.{name}")
        outcome = module.execute(request, work)
        result = StageResult(
            stage=name,
            key=request.key,
            outputs=_outputs(work),
            tools=outcome.tools,
            seconds=round(time.monotonic() - started, 2),
            facts=outcome.facts,
        )
        (work / RESULT_FILE).write_text(result.to_json())
        _publish(work, Path(stage_dir(name, request.key)))
    except StageError as error:
        print(f"{ERROR_PREFIX}{error}", file=sys.stderr, flush=True)
        return 1
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        print(f"{ERROR_PREFIX}{error.strerror or error}{where}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(f"{ERROR_PREFIX}interrupted", file=sys.stderr, flush=True)
        return 130
    return 0
