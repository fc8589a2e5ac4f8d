"""One build: description -> plan -> six stages -> artifacts in the target directory.

Each stage's cache key is the hash of its image id, its request and the digests of its
inputs' outputs, so a stage whose key is already in the artifact volume is skipped and
its outputs reused. Nothing reaches the target directory until the checksum stage has
verified the ISO, and each file lands there by rename.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.description import Description, parse_description
from orchestrator.engine import DEFAULT_VOLUME, ArtifactVolume, StageRunner, connect
from orchestrator.errors import LiveorchError, TargetError
from orchestrator.images import StageImage, ensure_stage_images
from orchestrator.plan import BuildPlan, make_plan
from stages.contract import (
    STAGE_INPUTS,
    STAGES,
    StageRequest,
    StageResult,
    canonical_json,
    sha256_text,
    stage_dir,
)


@dataclass
class BuildOptions:
    target_dir: Path
    profiles: tuple[str, ...] = ()
    lock: Path | None = None
    update_lock: bool = False
    no_cache: bool = False
    source_date_epoch: int | None = None
    volume: str = DEFAULT_VOLUME
    engine_host: str | None = None
    verbose: bool = False


@dataclass
class StageReport:
    stage: str
    key: str
    cached: bool
    seconds: float
    result: StageResult


@dataclass
class BuildReport:
    iso: Path
    sha256: str
    size: int
    packages: int
    seconds: float
    stages: list[StageReport] = field(default_factory=list)


def lock_path(description: Description, options: BuildOptions) -> Path:
    return options.lock or description.directory / f"{description.name}.lock"


def load_lock(description: Description, options: BuildOptions) -> dict[str, Any] | None:
    path = lock_path(description, options)
    if options.update_lock or not path.is_file():
        if options.lock and not options.update_lock:
            raise TargetError(f"{path}: no such lock file")
        return None
    try:
        lock = json.loads(path.read_text())
        lock["packages"]
    except (ValueError, KeyError, TypeError):
        raise TargetError(f"{path}: not a liveorch lock file", hint="re-create it with --update-lock") from None
    return lock


def stage_key(stage: str, image: StageImage, epoch: int, options: dict[str, Any],
              inputs: dict[str, StageResult]) -> str:
    return sha256_text(canonical_json({
        "stage": stage,
        "image": image.id,
        "source_date_epoch": epoch,
        "options": options,
        "inputs": {name: result.digest() for name, result in sorted(inputs.items())},
    }))


def _prepare_target(target: Path) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".liveorch-write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise TargetError(f"target directory {target} is not writable: {error.strerror}") from None


def _epoch(options: BuildOptions, lock: dict[str, Any] | None) -> int:
    if options.source_date_epoch is not None:
        return options.source_date_epoch
    if lock and lock.get("source_date_epoch"):
        return int(lock["source_date_epoch"])
    return 0  # resolve derives it from the newest package


def run_build(config: Path, options: BuildOptions, say: Callable[[str], None]) -> BuildReport:
    started = time.monotonic()
    description = parse_description(config, options.profiles)
    lock = load_lock(description, options)
    plan = make_plan(description, lock)
    for note in plan.notes:
        say(f"note: {note}")
    _prepare_target(options.target_dir)
    client = connect(options.engine_host)
    images = ensure_stage_images(client, say)
    build_id = uuid.uuid4().hex[:12]
    volume = ArtifactVolume(client, options.volume, images["checksum"].tag, build_id)
    log_path = options.target_dir / f"{plan.basename}.log"
    try:
        with log_path.open("w") as log:
            runner = StageRunner(client, volume, log, echo=say if options.verbose else None)
            reports = _run_stages(plan, images, runner, options, lock, say)
        say(f"full log: {log_path}")
        return _export(plan, volume, reports, options.target_dir, started)
    finally:
        volume.close()
        client.close()


def _run_stages(plan: BuildPlan, images: dict[str, StageImage], runner: StageRunner, options: BuildOptions,
                lock: dict[str, Any] | None, say: Callable[[str], None]) -> dict[str, StageReport]:
    reports: dict[str, StageReport] = {}
    epoch = _epoch(options, lock)
    for stage in STAGES:
        inputs = {name: reports[name].result for name in STAGE_INPUTS[stage]}
        stage_options = plan.options[stage]
        key = stage_key(stage, images[stage], epoch, stage_options, inputs)
        forced = options.no_cache or (stage == "resolve" and options.update_lock)
        began = time.monotonic()
        result = None if forced else runner.cached(stage, key)
        cached = result is not None
        if result is not None:
            say(f"[{stage}] cached")
        else:
            say(f"[{stage}] running")
            request = StageRequest(
                stage=stage,
                key=key,
                source_date_epoch=epoch,
                inputs={name: str(stage_dir(name, r.key)) for name, r in inputs.items()},
                options=stage_options,
            )
            result = runner.run(images[stage], request)
            say(f"[{stage}] done in {time.monotonic() - began:.1f} s")
        reports[stage] = StageReport(stage, key, cached, time.monotonic() - began, result)
        if stage == "resolve":
            epoch = int(result.facts["source_date_epoch"])
    return reports


def _export(plan: BuildPlan, volume: ArtifactVolume, reports: dict[str, StageReport], target: Path,
            started: float) -> BuildReport:
    iso_result = reports["iso"].result
    checksum_result = reports["checksum"].result
    sha256 = str(checksum_result.facts["sha256"])
    if iso_result.outputs[plan.iso_name].sha256 != sha256:
        raise LiveorchError("the checksum stage verified a different ISO than the iso stage wrote")
    resolve = reports["resolve"]
    rootfs = reports["rootfs"]
    exports = [
        (stage_dir("resolve", resolve.key) / "lock.json", f"{plan.image_name}.lock", resolve.result, "lock.json"),
        (stage_dir("rootfs", rootfs.key) / "packages", f"{plan.basename}.packages", rootfs.result, "packages"),
        (stage_dir("checksum", reports["checksum"].key) / f"{plan.iso_name}.sha256", f"{plan.iso_name}.sha256",
         checksum_result, f"{plan.iso_name}.sha256"),
        (stage_dir("iso", reports["iso"].key) / plan.iso_name, plan.iso_name, iso_result, plan.iso_name),
    ]
    for source, name, result, output in exports:
        volume.export(source, target / name, result.outputs[output].sha256)
    iso = target / plan.iso_name
    packages = len((target / f"{plan.basename}.packages").read_text().splitlines())
    return BuildReport(iso=iso, sha256=sha256, size=os.path.getsize(iso), packages=packages,
                       seconds=time.monotonic() - started, stages=list(reports.values()))
