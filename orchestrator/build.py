"""One build: description -> plan -> stages -> artifacts in the target directory.

`Build` holds what a build needs from start to end (the parsed description, its lock and
payload, the plan, the engine, the stage images and the store) and releases it however
the build ends. The stage loop is orchestrator/pipeline.py, the results' way out
export.py, pxe_bundle.py and report.py.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from liveorch.orchestrator import pxe
from liveorch.orchestrator.containers import StageLimits, StageRunner
from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.engine import connect, engine_cpus, engine_errors
from liveorch.orchestrator.errors import LiveorchError, TargetError, UsageError
from liveorch.orchestrator.export import export_files, export_iso, export_names
from liveorch.orchestrator.images import context_hash, ensure_images
from liveorch.orchestrator.lock import check_lock, load_lock, lock_path
from liveorch.orchestrator.oci_registry import RegistryRef
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.payload import make_payload
from liveorch.orchestrator.pipeline import LoopSettings, StageLoop, StageReport
from liveorch.orchestrator.plan import DEFAULT_HOOK_TIMEOUT, make_plan
from liveorch.orchestrator.progress import Progress, as_progress
from liveorch.orchestrator.pxe_bundle import write_bundle
from liveorch.orchestrator.remote_cache import RemoteCache
from liveorch.orchestrator.report import BuildInputs, BuildReport, build_record
from liveorch.orchestrator.report_html import render_report
from liveorch.orchestrator.shared_store import SharedStore
from liveorch.orchestrator.store import DEFAULT_STORE, Provenance, Store
from liveorch.orchestrator.target_files import check_target_names, open_new_log, write_file_atomic
from liveorch.stages.contract import Record, StageRequest, StageSpec
from liveorch.stages.contracts.resolve import LOCK
from liveorch.stages.contracts.rootfs import PAYLOAD_FILE


@dataclass
class BuildOptions:
    target_dir: Path
    profiles: tuple[str, ...] = ()
    lock: Path | None = None
    update_lock: bool = False
    no_cache: bool = False
    source_date_epoch: int | None = None
    volume: str = DEFAULT_STORE
    engine_host: str | None = None
    verbose: bool = False
    offline: bool = False
    overrides: Overrides | None = None
    hook_timeout: int = DEFAULT_HOOK_TIMEOUT
    keep_work: bool = False
    pxe_url: str | None = None  # also write the network-boot bundle, its configs pointing here
    pxe_image: pxe.NetworkImage = pxe.NetworkImage.ISO  # what the bundle's root=live: fetches
    pxe_append: str = ""  # more kernel parameters for the network boot (e.g. rd.kiwi.live.system=)
    limits: StageLimits = field(default_factory=StageLimits)
    cache: str | None = None  # REGISTRY/REPOSITORY of a shared stage cache
    cache_push: bool = False  # also push what this build has and the registry lacks
    images: str | None = None  # REGISTRY[/PREFIX] to pull the stage images from


def _prepare_target(target: Path, names: list[str]) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".liveorch-write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise TargetError(f"target directory {target} is not writable: {error.strerror}") from None
    check_target_names(target, names)


class Build:
    """One build's state, from the parsed description to the open store.

    Used as a context manager so the probe container and the engine connection are
    released however the build ends (error, Ctrl-C).
    """

    def __init__(self, config: Path, options: BuildOptions, progress: Progress | Callable[[str], None]) -> None:
        self.options = options
        self.progress = as_progress(progress)
        self.say = self.progress.note
        self.started = time.monotonic()
        self.description = parse_description(config, options.profiles, overrides=options.overrides)
        self.lock_path = lock_path(self.description, options.lock)
        required = options.lock is not None or options.offline
        self.lock = None if options.update_lock else load_lock(self.lock_path, required=required)
        self.payload = make_payload(self.description)
        self.plan = make_plan(self.description, self.lock, offline=options.offline,
                              payload_sha256=self.payload.sha256 if self.payload else None,
                              hook_timeout=options.hook_timeout,
                              pxe_url=pxe.check_url(options.pxe_url) if options.pxe_url else None,
                              pxe_image=options.pxe_image, pxe_append=pxe.check_append(options.pxe_append))
        if self.lock is not None:
            resolve = self.plan.options["resolve"]
            check_lock(self.lock_path, self.lock, resolve.packages, resolve.repositories)
            self.say(f"using the lock {self.lock_path} ({len(self.lock.packages)} packages)")
        for warning in self.plan.warnings:
            self.say(f"warning: {warning}")
        for note in self.plan.notes:
            self.say(f"note: {note}")

    def __enter__(self) -> Build:
        _prepare_target(self.options.target_dir, export_names(self.plan))
        with engine_errors():
            self.client = connect(self.options.engine_host)
            try:
                # Images first: one that does not build stops the run before the store is touched.
                self.images = ensure_images(self.client, self.say, registry=self.options.images)
                provenance = Provenance(str(self.description.path.absolute()), self.description.profiles)
                self.store = Store(self.client, self.options.volume, self.images["store"].tag, uuid.uuid4().hex[:12],
                                   provenance)
            except BaseException:
                self.client.close()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.store.close()
        self.client.close()
        if self.payload is not None:
            self.payload.file.close()

    def run_stages(self, until: str | None = None) -> dict[str, StageReport]:
        self.log_path, log = open_new_log(self.options.target_dir, self.plan.basename)
        with log:
            log.write(f"liveorch build of {self.description.path} (profiles: {', '.join(self.description.profiles)})\n")
            runner = StageRunner(self.client, self.store, log, self.progress, self.options.limits,
                                 self.options.keep_work)
            settings = LoopSettings(epoch=self._epoch(), no_cache=self.options.no_cache,
                                    update_lock=self.options.update_lock, cpus=engine_cpus(self.client),
                                    origin=self.started)
            self.shared = SharedStore(self.store, self._remote_cache(), self.say)
            loop = StageLoop(self.plan.options, context_hash, self.shared, self._run_with(runner), self.progress,
                             log, settings, cancel=runner.cancel)
            try:
                with engine_errors():
                    reports = loop.run(until)
                    self.shared.finish()
            except LiveorchError as error:
                self.shared.finish(cancel=True)
                error.hint = "\n".join(filter(None, [error.hint, f"full log: {self.log_path}",
                                                     *_kept_hint(runner)]))
                raise
            except BaseException:
                self.shared.finish(cancel=True)
                raise
        self.say(f"full log: {self.log_path}")
        return reports

    def _remote_cache(self) -> RemoteCache | None:
        if not self.options.cache:
            return None
        try:
            ref = RegistryRef.parse(self.options.cache)
        except ValueError as error:
            raise UsageError(f"--cache {error}") from None
        return RemoteCache(ref, self.options.cache_push, self.say)

    def _epoch(self) -> int:
        if self.options.source_date_epoch is not None:
            return self.options.source_date_epoch
        return self.lock.source_date_epoch if self.lock else 0  # 0: resolve derives it

    def _run_with(self, runner: StageRunner) -> Callable[[StageSpec, StageRequest], tuple[Record, dict | None, bool]]:
        def run(spec: StageSpec, request: StageRequest) -> tuple[Record, dict | None, bool]:
            files: dict[str, IO[bytes]] = {}
            if spec.name == "rootfs" and self.payload is not None:
                files[PAYLOAD_FILE] = self.payload.file
            outcome = runner.run(self.images[spec.name], spec, request, self.plan.network(spec.name), files)
            return outcome.record, outcome.container, outcome.published
        return run

    def export_lock(self, reports: dict[str, StageReport], target: Path) -> None:
        resolve = reports["resolve"]
        with engine_errors():
            self.store.export("resolve", resolve.key, LOCK, target, resolve.record.outputs[LOCK].sha256)

    def export(self, reports: dict[str, StageReport]) -> BuildReport:
        """The results into the target directory, the ISO last, then report.json and the
        picture of it, report.html."""
        plan, target = self.plan, self.options.target_dir
        with engine_errors():
            sha256, package_info = export_files(plan, reports, self.store, target)
            pxe_record = None
            if plan.pxe is not None:
                pxe_record = write_bundle(plan, plan.pxe, reports, self.store, target / f"{plan.basename}.pxe")
                self.say(f"network-boot bundle: {target / pxe_record['directory']} (image URL {plan.pxe.image_url})")
            iso = export_iso(plan, reports, self.store, target)
        lock = json.loads((target / f"{plan.image_name}.lock").read_text())
        report = BuildReport(iso=iso, sha256=sha256, size=os.path.getsize(iso), packages=len(package_info),
                             seconds=time.monotonic() - self.started, log=self.log_path,
                             stages=list(reports.values()),
                             pxe=target / pxe_record["directory"] if pxe_record else None)
        changes = self.options.overrides.requested() if self.options.overrides else {}
        inputs = BuildInputs(self.description, self.payload.sha256 if self.payload else None, plan, self.images,
                             self.options.limits, changes)
        record = build_record(inputs, report, lock, package_info)
        if pxe_record:
            record["pxe"] = pxe_record
        if self.shared.remote is not None:
            record["remote_cache"] = self.shared.summary()
        write_file_atomic(target / f"{plan.basename}.report.json", json.dumps(record, indent=1) + "\n")
        write_file_atomic(target / f"{plan.basename}.report.html", render_report(record))
        written = [target / name for name in export_names(plan)] + [target / f"{plan.image_name}.lock"]
        report.files = sorted({path for path in written if path.exists()} | {self.log_path})
        return report


def _kept_hint(runner: StageRunner) -> list[str]:
    """Where --keep-work put the failed stage's work, and how to get at it."""
    if runner.kept is None:
        return []
    return [f"work kept: volume {runner.kept} (request.json, out/, tmp/, stage.log); "
            f"`liveorch clean` removes it",
            f"copy it here: docker run --rm --user 0 --entrypoint tar -v {runner.kept}:/work:ro "
            f"{runner.store.keeper_image} -C /work -c . | tar -x"]


def run_build(config: Path, options: BuildOptions, progress: Progress | Callable[[str], None]) -> BuildReport:
    with Build(config, options, progress) as build:
        return build.export(build.run_stages())
