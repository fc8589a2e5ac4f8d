"""Runs one stage in its container: request in, outputs and claims out.

The stage writes only into its scratch volume (/work/out); publishing into the store is
the orchestrator's trusted step, which hashes what is there itself. What the stage
returns besides files (tool versions, facts) goes to /work/result.json as claims.
"""

from __future__ import annotations

import importlib
import os
import sys
import time

from liveorch.stages.contract import ERROR_PREFIX, ContractError, StageClaims, StageRequest, Workspace
from liveorch.stages.limits import LimitEvents
from liveorch.stages.tools import StageError


def _fail(message: str, before: LimitEvents) -> int:
    """One line; a container limit the stage ran into is named first, unless it already is."""
    cause = LimitEvents.read().cause_since(before)
    if cause and cause not in message:
        message = f"{cause}: {message}"
    print(f"{ERROR_PREFIX}{message}", file=sys.stderr, flush=True)
    return 1


def execute(name: str, workspace: Workspace) -> StageClaims:
    """Validate the request against this stage's contract, run the stage, return its claims."""
    started = time.monotonic()
    spec = importlib.import_module(f"liveorch.stages.contracts.{name}").SPEC
    request = StageRequest.from_json(workspace.request.read_text(), spec)
    os.environ["SOURCE_DATE_EPOCH"] = str(request.source_date_epoch)
    os.environ["TZ"] = "UTC"
    os.umask(0o022)
    workspace.out.mkdir(exist_ok=True)
    workspace.tmp.mkdir(exist_ok=True)
    outcome = importlib.import_module(f"liveorch.stages.{name}").execute(request, workspace)
    return StageClaims(tools=outcome.tools, facts=outcome.facts, seconds=round(time.monotonic() - started, 2))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isidentifier():
        print("usage: python3 -m liveorch.stages STAGE  (request in /work/request.json)", file=sys.stderr)
        return 2
    workspace = Workspace()
    before = LimitEvents.read()
    try:
        claims = execute(args[0], workspace)
        cause = LimitEvents.read().cause_since(before)
        if cause:
            return _fail(cause, before)
        workspace.claims.write_text(claims.to_json())
    except (StageError, ContractError) as error:
        return _fail(str(error), before)
    except ModuleNotFoundError as error:
        return _fail(f"no such stage in this image: {error.name}", before)
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        return _fail(f"{error.strerror or error}{where}", before)
    except KeyboardInterrupt:
        _fail("interrupted", before)
        return 130
    return 0
