"""The lock file: exactly which packages (version, sha256, repository) an image is built from.

Written by the resolve stage (its format is the resolve contract's `Lock`), exported as
<name>.lock, and read back from beside the description (or --lock) on later builds, which
then install exactly what it lists. A lock that no longer fits the description is refused
with the entries that differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from liveorch.orchestrator.description import Description
from liveorch.orchestrator.errors import LockError
from liveorch.stages.contract import ContractError, decode
from liveorch.stages.contracts.resolve import LOCK_FORMAT, AptRepository, Lock


def lock_path(description: Description, explicit: Path | None) -> Path:
    return explicit or description.directory / f"{description.name}.lock"


def _upgrade(data: Any) -> Any:
    """Locks written before the trust decisions were recorded name none: say what they were
    (a file:// repository was always trusted; signatures were otherwise required)."""
    if isinstance(data, dict) and isinstance(data.get("repositories"), list):
        for repository in data["repositories"]:
            if isinstance(repository, dict) and "url" in repository:
                local = str(repository["url"]).startswith("file://")
                repository.setdefault("local", local)
                repository.setdefault("trusted", local)
    return data


def load_lock(path: Path, required: bool) -> Lock | None:
    if not path.is_file():
        if required:
            raise LockError(f"{path}: no such lock file")
        return None
    try:
        lock = decode(Lock, _upgrade(json.loads(path.read_text())), "lock")
    except (ValueError, ContractError) as error:
        raise LockError(f"{path}: not a liveorch lock file (format {LOCK_FORMAT}): {error}",
                        hint="re-create it with --update-lock") from None
    if lock.format != LOCK_FORMAT:
        raise LockError(f"{path}: not a liveorch lock file (format {LOCK_FORMAT})",
                        hint="re-create it with --update-lock")
    return lock


def check_lock(path: Path, lock: Lock, requested: tuple[str, ...], repositories: tuple[AptRepository, ...]) -> None:
    """The lock must hold every requested package and have been made from the same repositories."""
    locked = {entry.name for entry in lock.packages}
    problems = []
    missing = sorted(set(requested) - locked)
    if missing:
        problems.append(f"not in the lock: {', '.join(missing)}")
    dropped = sorted(set(lock.requested) - set(requested))
    if dropped:
        problems.append(f"locked but no longer requested: {', '.join(dropped)}")
    wanted = sorted((r.url.rstrip("/"), r.suite) for r in repositories)
    have = sorted((r.url.rstrip("/"), r.suite) for r in lock.repositories)
    if wanted != have:
        problems.append(f"repositories differ (lock: {have}, description: {wanted})")
    if problems:
        raise LockError(f"{path}: the lock does not match the description: {'; '.join(problems)}",
                        hint="run with --update-lock to resolve anew")
