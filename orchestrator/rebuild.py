"""`liveorch rebuild`: reproduce a published build from its report.json, on this host.

The inputs are exactly what the report names: the description (its sha256 must match), the
description changes and profiles it was built with, its lock (beside the report, its sha256
must match) and its stage images (this checkout's code must be the same as the build's, per
stage; with --images they are pulled by content tag and their digests compared). The build
runs with no cache, in a fresh store volume that is removed afterwards, and its ISO is
compared with the report's; on a difference, the first stage and files that differ are
named. This is how a second party checks an ISO it did not build.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from liveorch.orchestrator.build import BuildOptions, run_build
from liveorch.orchestrator.description import find_description
from liveorch.orchestrator.engine import connect, remove_volume
from liveorch.orchestrator.errors import LiveorchError, UsageError
from liveorch.orchestrator.images import context_hash
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.progress import Progress
from liveorch.orchestrator.repro import first_difference
from liveorch.stages.contract import Artifact, canonical_json


@dataclass
class RebuildReport:
    identical: bool
    recorded: str
    rebuilt: str
    first_difference: str | None
    differing_files: list[str]
    image_digests_checked: int


def _load(report_path: Path) -> dict[str, Any]:
    try:
        report = json.loads(report_path.read_text())
        missing = [key for key in ("description", "iso", "stages", "lock_sha256") if key not in report]
        if missing:
            raise KeyError(", ".join(missing))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"{report_path}: not a liveorch report.json ({error})") from None
    return report


def _description(report: dict[str, Any], given: Path | None) -> Path:
    path = find_description(given or Path(report["description"]["path"]))
    if hashlib.sha256(path.read_bytes()).hexdigest() != report["description"]["sha256"]:
        raise LiveorchError(f"{path} is not the description the report was built from (its sha256 differs)",
                            hint="give the same config.xml with --description")
    return path


def _lock(report_path: Path, report: dict[str, Any], given: Path | None) -> Path:
    path = given or report_path.parent / f"{report['description']['name']}.lock"
    try:
        lock = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise LiveorchError(f"{path}: the build's lock is needed ({error})", hint="give it with --lock") from None
    if hashlib.sha256(canonical_json(lock).encode()).hexdigest() != report["lock_sha256"]:
        raise LiveorchError(f"{path} is not the lock the report was built with (its sha256 differs)")
    return path


def _check_code(report: dict[str, Any]) -> None:
    """The same tools: every stage's code here must be the code the build ran."""
    for stage in report["stages"]:
        if stage.get("code") and stage["code"] != context_hash(stage["stage"]):
            raise LiveorchError(f"this checkout's {stage['stage']} stage is not the code the build ran "
                                f"(report {stage['code'][:16]}, here {context_hash(stage['stage'])[:16]})",
                                hint="check out the liveorch version that made the build")


def _outputs(stages: list[dict[str, Any]]) -> dict[str, dict[str, Artifact]]:
    return {s["stage"]: {name: Artifact(o["size"], o["sha256"]) for name, o in s["outputs"].items()} for s in stages}


def rebuild(report_path: Path, description: Path | None, lock: Path | None, images: str | None,
            engine_host: str | None, progress: Progress) -> RebuildReport:
    report = _load(report_path)
    config = _description(report, description)
    lock_file = _lock(report_path, report, lock)
    _check_code(report)
    changes = Overrides(**report["description"].get("changes", {}))
    volume = f"liveorch-rebuild-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="liveorch-rebuild-") as tmp:
        options = BuildOptions(target_dir=Path(tmp), profiles=tuple(report["description"]["profiles"]),
                               lock=lock_file, no_cache=True, volume=volume, engine_host=engine_host,
                               overrides=changes, images=images)
        try:
            built = run_build(config, options, progress)
            rebuilt = json.loads(next(Path(tmp).glob("*.report.json")).read_text())
        finally:
            client = connect(engine_host)
            remove_volume(client, volume)
            client.close()
    digests = _compare_digests(report, rebuilt)
    stage, files = first_difference(_outputs(report["stages"]), _outputs(rebuilt["stages"]))
    return RebuildReport(built.sha256 == report["iso"]["sha256"], report["iso"]["sha256"], built.sha256, stage,
                         files, digests)


def _compare_digests(report: dict[str, Any], rebuilt: dict[str, Any]) -> int:
    """Images pulled by content tag must be the very images the build ran, where it recorded digests."""
    checked = 0
    here = {s["stage"]: s.get("image_digest") for s in rebuilt["stages"]}
    for stage in report["stages"]:
        recorded = stage.get("image_digest")
        if recorded and here.get(stage["stage"]):
            if recorded.split("@")[-1] != here[stage["stage"]].split("@")[-1]:
                raise LiveorchError(f"the {stage['stage']} image is not the one the build ran "
                                    f"({here[stage['stage']]} instead of {recorded})")
            checked += 1
    return checked
