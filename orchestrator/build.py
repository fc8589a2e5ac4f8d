"""One build: description -> plan -> six stages -> artifacts in the target directory.

Each stage's cache key is the hash of its image id, its request and the digests of its
inputs' outputs, so a stage whose key is already in the artifact volume is skipped and
its outputs reused. Nothing reaches the target directory until the checksum stage has
verified the ISO, and each file lands there by rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from liveorch import __version__
from liveorch.orchestrator import pxe
from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.engine import DEFAULT_VOLUME, ArtifactVolume, StageRunner, connect
from liveorch.orchestrator.errors import LiveorchError, TargetError
from liveorch.orchestrator.images import StageImage, ensure_stage_images, image_tag
from liveorch.orchestrator.lock import check_lock, load_lock, lock_path
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.payload import Payload, make_payload
from liveorch.orchestrator.plan import DEFAULT_HOOK_TIMEOUT, BuildPlan, make_plan
from liveorch.orchestrator.progress import Progress, as_progress
from liveorch.orchestrator.sbom import make_sbom
from liveorch.stages.contract import (
    ARTIFACTS_MOUNT,
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
    offline: bool = False
    overrides: Overrides | None = None
    hook_timeout: int = DEFAULT_HOOK_TIMEOUT
    keep_work: bool = False
    pxe_url: str | None = None  # also write the network-boot bundle, its configs pointing here


@dataclass
class StageReport:
    stage: str
    key: str
    cached: bool
    seconds: float
    result: StageResult
    container: dict[str, Any] | None = None


@dataclass
class BuildReport:
    iso: Path
    sha256: str
    size: int
    packages: int
    seconds: float
    stages: list[StageReport] = field(default_factory=list)
    pxe: Path | None = None  # the network-boot bundle's directory


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


class Build:
    """One build's state, from the parsed description to the open artifact volume.

    Used as a context manager so the probe container and the engine connection are
    released however the build ends (error, Ctrl-C).
    """

    def __init__(self, config: Path, options: BuildOptions, progress: Progress | Callable[[str], None]) -> None:
        self.options = options
        self.progress = as_progress(progress)
        say = self.progress.note
        self.say = say
        self.started = time.monotonic()
        self.description = parse_description(config, options.profiles, overrides=options.overrides)
        self.lock_path = lock_path(self.description, options.lock)
        required = options.lock is not None or options.offline
        self.lock = None if options.update_lock else load_lock(self.lock_path, required=required)
        self.payload = make_payload(self.description)
        self.plan = make_plan(self.description, self.lock, offline=options.offline,
                              payload_sha256=self.payload.sha256 if self.payload else None,
                              hook_timeout=options.hook_timeout,
                              pxe_url=pxe.check_url(options.pxe_url) if options.pxe_url else None)
        if self.lock is not None:
            resolve = self.plan.options["resolve"]
            check_lock(self.lock_path, self.lock, resolve["packages"], resolve["repositories"])
            say(f"using the lock {self.lock_path} ({len(self.lock['packages'])} packages)")
        for note in self.plan.notes:
            say(f"note: {note}")

    def __enter__(self) -> Build:
        _prepare_target(self.options.target_dir)
        self.client = connect(self.options.engine_host)
        try:
            # Images first: one that does not build stops the run before the volume is touched.
            self.images = ensure_stage_images(self.client, self.say)
        except BaseException:
            self.client.close()
            raise
        self.volume = ArtifactVolume(self.client, self.options.volume, self.images["checksum"].tag,
                                     uuid.uuid4().hex[:12])
        try:
            if self.payload is not None:
                self._upload_payload(self.payload)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.volume.close()
        self.client.close()
        if self.payload is not None:
            self.payload.file.close()

    def _upload_payload(self, payload: Payload) -> None:
        directory = PurePosixPath(ARTIFACTS_MOUNT) / payload.volume_dir
        if not self.volume.exists(directory / "payload.tar"):
            size = payload.file.seek(0, 2)
            payload.file.seek(0)
            self.volume.put_file(directory, "payload.tar", payload.file, size)
            self.say(f"description files: {payload.entries} entries uploaded")

    def run_stages(self, until: str = STAGES[-1]) -> dict[str, StageReport]:
        log_path = self.options.target_dir / f"{self.plan.basename}.log"
        with log_path.open("w") as log:
            log.write(f"liveorch build of {self.description.path} (profiles: {', '.join(self.description.profiles)})\n")
            runner = StageRunner(self.client, self.volume, log, self.progress, keep_work=self.options.keep_work)
            try:
                reports = _run_stages(self.plan, self.images, runner, self.options, self.lock, self.progress, until)
            except LiveorchError as error:
                error.hint = "\n".join(filter(None, [error.hint, f"full log: {log_path}", *_kept_hint(runner)]))
                raise
        self.say(f"full log: {log_path}")
        return reports

    def export_lock(self, reports: dict[str, StageReport], target: Path) -> None:
        resolve = reports["resolve"]
        self.volume.export(stage_dir("resolve", resolve.key) / "lock.json", target,
                           resolve.result.outputs["lock.json"].sha256)

    def export(self, reports: dict[str, StageReport]) -> BuildReport:
        return _export(self, reports)


def _kept_hint(runner: StageRunner) -> list[str]:
    """Where --keep-work put the failed stage's work directory, and how to get at it."""
    if runner.kept is None:
        return []
    volume, kept = runner.volume.name, runner.kept
    return [f"work kept: {kept} in volume {volume} (request.json, partial outputs, stage.log); "
            f"`liveorch clean --volume {volume}` removes it",
            f"copy it here: docker run --rm --user 0 --entrypoint tar -v {volume}:/artifacts:ro "
            f"{image_tag('checksum')} -C {kept.parent} -c {kept.name} | tar -x"]


def run_build(config: Path, options: BuildOptions, progress: Progress | Callable[[str], None]) -> BuildReport:
    with Build(config, options, progress) as build:
        return build.export(build.run_stages())


def _run_stages(plan: BuildPlan, images: dict[str, StageImage], runner: StageRunner, options: BuildOptions,
                lock: dict[str, Any] | None, progress: Progress, until: str) -> dict[str, StageReport]:
    reports: dict[str, StageReport] = {}
    epoch = _epoch(options, lock)
    for stage in STAGES[: STAGES.index(until) + 1]:
        inputs = {name: reports[name].result for name in STAGE_INPUTS[stage]}
        stage_options = plan.options[stage]
        key = stage_key(stage, images[stage], epoch, stage_options, inputs)
        forced = options.no_cache or (stage == "resolve" and options.update_lock)
        began = time.monotonic()
        result = None if forced else runner.cached(stage, key)
        cached = result is not None
        if result is not None:
            progress.stage(stage, "cached")
            runner.log.write(f"[{stage}] cached: {stage_dir(stage, key)}\n")
        else:
            progress.stage(stage, "running")
            request = StageRequest(
                stage=stage,
                key=key,
                source_date_epoch=epoch,
                inputs={name: str(stage_dir(name, r.key)) for name, r in inputs.items()},
                options=stage_options,
            )
            try:
                result = runner.run(images[stage], request, network=plan.network(stage))
            except LiveorchError:
                progress.stage(stage, "failed", time.monotonic() - began)
                raise
            progress.stage(stage, "done", time.monotonic() - began)
        reports[stage] = StageReport(stage, key, cached, time.monotonic() - began, result,
                                     None if cached else runner.containers.get(stage))
        if stage == "resolve":
            epoch = int(result.facts["source_date_epoch"])
    return reports


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    partial.write_text(text)
    os.replace(partial, path)


def _export(build: Build, reports: dict[str, StageReport]) -> BuildReport:
    """Copy the results out; the ISO goes last, so its presence means everything is there."""
    plan, volume, target = build.plan, build.volume, build.options.target_dir
    checksum_result = reports["checksum"].result
    sha256 = str(checksum_result.facts["sha256"])
    # With media check the checksum stage writes the final ISO (its MD5 implanted).
    final = "checksum" if plan.iso_name in checksum_result.outputs else "iso"
    iso_result = reports[final].result
    if iso_result.outputs[plan.iso_name].sha256 != sha256:
        raise LiveorchError("the checksum stage verified a different ISO than the one to export")
    resolve = reports["resolve"]
    rootfs = reports["rootfs"]
    exports = [
        ("resolve", resolve, "lock.json", f"{plan.image_name}.lock"),
        ("rootfs", rootfs, "packages", f"{plan.basename}.packages"),
        ("rootfs", rootfs, "verified", f"{plan.basename}.verified"),
        ("checksum", reports["checksum"], f"{plan.iso_name}.sha256", f"{plan.iso_name}.sha256"),
    ]
    for stage, report, output, name in exports:
        volume.export(stage_dir(stage, report.key) / output, target / name, report.result.outputs[output].sha256)
    lock = json.loads((target / f"{plan.image_name}.lock").read_text())
    package_info = json.loads(volume.read(stage_dir("rootfs", rootfs.key) / "package-info.json") or b"[]")
    epoch = int(resolve.result.facts["source_date_epoch"])
    sbom = make_sbom(plan.image_name, plan.iso_name, sha256, epoch, package_info, lock)
    _write_atomic(target / f"{plan.basename}.spdx.json", json.dumps(sbom, indent=1) + "\n")
    pxe_record = _export_pxe(build, reports) if plan.pxe_url else None
    volume.export(stage_dir(final, reports[final].key) / plan.iso_name, target / plan.iso_name,
                  iso_result.outputs[plan.iso_name].sha256)
    iso = target / plan.iso_name
    report = BuildReport(iso=iso, sha256=sha256, size=os.path.getsize(iso), packages=len(package_info),
                         seconds=time.monotonic() - build.started, stages=list(reports.values()),
                         pxe=target / pxe_record["directory"] if pxe_record else None)
    record = build_record(build, report, lock)
    if pxe_record:
        record["pxe"] = pxe_record
    _write_atomic(target / f"{plan.basename}.report.json", json.dumps(record, indent=1) + "\n")
    return report


def _export_pxe(build: Build, reports: dict[str, StageReport]) -> dict[str, Any]:
    """<basename>.pxe/: kernel and initrd (with the network modules), the squashfs, and boot
    configs whose kernel command line fetches the image from the plan's URL."""
    plan, volume = build.plan, build.volume
    directory = build.options.target_dir / f"{plan.basename}.pxe"
    (directory / "pxelinux.cfg").mkdir(parents=True, exist_ok=True)
    assert plan.pxe_url is not None
    bundle = pxe.bundle_for(plan.options["iso"], plan.pxe_url)
    copies = [("initrd", "vmlinuz", pxe.KERNEL), ("initrd", "initrd.img", pxe.INITRD),
              ("squashfs", "LiveOS/squashfs.img", pxe.IMAGE)]
    files: dict[str, dict[str, Any]] = {}
    for stage, output, name in copies:
        artifact = reports[stage].result.outputs[output]
        volume.export(stage_dir(stage, reports[stage].key) / output, directory / name, artifact.sha256)
        files[name] = {"size": artifact.size, "sha256": artifact.sha256}
    for name, text in pxe.config_files(bundle).items():
        _write_atomic(directory / name, text)
        files[name] = {"size": len(text.encode()), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    build.say(f"network-boot bundle: {directory} (image URL {bundle.image_url})")
    return {"directory": directory.name, "url": bundle.url, "image_url": bundle.image_url,
            "kernel_cmdline": bundle.kernel_cmdline, "ipxe_script": pxe.IPXE_SCRIPT,
            "pxelinux_config": pxe.PXELINUX_CONFIG, "grub_config": pxe.GRUB_CONFIG,
            "files": dict(sorted(files.items()))}


def build_record(build: Build, report: BuildReport, lock: dict[str, Any]) -> dict[str, Any]:
    """The build's inputs and every stage's record: what users and tools read instead of logs."""
    description = build.description
    return {
        "liveorch": __version__,
        "description": {
            "path": str(description.path),
            "sha256": hashlib.sha256(description.path.read_bytes()).hexdigest(),
            "payload_sha256": build.payload.sha256 if build.payload else None,
            "name": description.name,
            "version": description.version,
            "summary": description.summary,
            "profiles": list(description.profiles),
        },
        "repositories": lock.get("repositories", []),
        "lock_sha256": hashlib.sha256(canonical_json(lock).encode()).hexdigest(),
        "source_date_epoch": lock.get("source_date_epoch"),
        "notes": build.plan.notes,
        "stages": [{
            "stage": s.stage,
            "image": build.images[s.stage].id,
            "key": s.key,
            "cached": s.cached,
            "seconds": round(s.seconds, 2),
            "stage_seconds": s.result.seconds,
            "outputs": {name: {"size": a.size, "sha256": a.sha256} for name, a in sorted(s.result.outputs.items())
                        if not name.startswith("debs/")},
            "tools": s.result.tools,
            "container": s.container,
        } for s in report.stages],
        "iso": {"name": report.iso.name, "size": report.size, "sha256": report.sha256},
        "packages": report.packages,
        "seconds": round(report.seconds, 2),
    }
