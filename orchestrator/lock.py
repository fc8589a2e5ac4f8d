"""The lock file: exactly which packages (version, sha256, repository) an image is built from.

Written by the resolve stage, exported as <name>.lock, and read back from beside the
description (or --lock) on later builds, which then install exactly what it lists. A lock
that no longer fits the description is refused with the entries that differ.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from liveorch.orchestrator.description import Description
from liveorch.orchestrator.errors import LiveorchError

LOCK_FORMAT = 1


class LockError(LiveorchError):
    exit_code = 5


def lock_path(description: Description, explicit: Path | None) -> Path:
    return explicit or description.directory / f"{description.name}.lock"


def load_lock(path: Path, required: bool) -> dict[str, Any] | None:
    if not path.is_file():
        if required:
            raise LockError(f"{path}: no such lock file")
        return None
    try:
        lock = json.loads(path.read_text())
        if lock.get("format") != LOCK_FORMAT or not isinstance(lock.get("packages"), list):
            raise ValueError
        for entry in lock["packages"]:
            entry["name"], entry["version"], entry["sha256"]
        for repository in lock.get("repositories", []):
            repository["url"], repository["suite"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise LockError(f"{path}: not a liveorch lock file (format {LOCK_FORMAT})",
                        hint="re-create it with --update-lock") from None
    return lock


def check_lock(path: Path, lock: dict[str, Any], requested: list[str], repositories: list[dict[str, Any]]) -> None:
    """The lock must hold every requested package and have been made from the same repositories."""
    locked = {entry["name"] for entry in lock["packages"]}
    problems = []
    missing = sorted(set(requested) - locked)
    if missing:
        problems.append(f"not in the lock: {', '.join(missing)}")
    if "requested" in lock:
        dropped = sorted(set(lock["requested"]) - set(requested))
        if dropped:
            problems.append(f"locked but no longer requested: {', '.join(dropped)}")
    wanted = sorted((r["url"].rstrip("/"), r["suite"]) for r in repositories)
    have = sorted((r["url"].rstrip("/"), r["suite"]) for r in lock.get("repositories", []))
    if wanted != have:
        problems.append(f"repositories differ (lock: {have}, description: {wanted})")
    if problems:
        raise LockError(f"{path}: the lock does not match the description: {'; '.join(problems)}",
                        hint="run with --update-lock to resolve anew")
