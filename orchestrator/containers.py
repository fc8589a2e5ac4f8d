"""Runs one stage container: its own scratch volume, the store read-only, its limits.

The container gets exactly the capabilities its contract declares, runs as the user it
declares, with no network unless it declares one, a memory and a process limit and a wall
clock. It writes only into its scratch volume; when it exits 0, the store keeper publishes
its outputs and the scratch volume is removed (kept with --keep-work when it failed).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

import docker
import docker.errors

from liveorch.orchestrator.diagnosis import failure_message
from liveorch.orchestrator.engine import DOCKER_DEFAULT_CAPS, LABEL
from liveorch.orchestrator.errors import Interrupted, StageFailed, UsageError
from liveorch.orchestrator.images import StageImage
from liveorch.orchestrator.progress import Progress
from liveorch.orchestrator.store import Store
from liveorch.orchestrator.volume_io import Entry, write_tree
from liveorch.stages.contract import (
    CLAIMS_FILE,
    REQUEST_FILE,
    STORE_MOUNT,
    WORK_MOUNT,
    Record,
    StageRequest,
    StageSpec,
    parse_progress,
)

TAIL_LINES = 30


@dataclass(frozen=True)
class StageLimits:
    """What every stage container may use; the defaults fit a 2-core, 8 GB CI runner."""

    memory: int = 4 << 30
    pids: int = 4096
    timeout: int = 3 * 3600


SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
MIN_MEMORY = 256 << 20


def parse_size(text: str) -> int:
    """--memory's value: a number of bytes with an optional unit (k, m, g; Docker's spelling)."""
    value = text.strip().lower().removesuffix("ib").removesuffix("b")
    number, unit = (value[:-1], value[-1]) if value[-1:].isalpha() else (value, "")
    if not number.isdigit() or unit not in SIZE_UNITS or int(number) * SIZE_UNITS[unit] < MIN_MEMORY:
        raise UsageError(f"--memory {text!r}: give a size of at least 256m, like 4g or 1536m")
    return int(number) * SIZE_UNITS[unit]


@dataclass(frozen=True)
class StageRun:
    """What a stage run produced: its record, and what the engine says it was given."""

    record: Record
    container: dict[str, object]
    published: bool


def container_privileges(attrs: dict) -> dict[str, object]:
    host = attrs.get("HostConfig", {})
    return {
        "user": attrs.get("Config", {}).get("User") or "0",
        "privileged": bool(host.get("Privileged")),
        "cap_add": sorted(host.get("CapAdd") or []),
        "cap_drop": sorted(host.get("CapDrop") or []),
        "devices": host.get("Devices") or [],
        "network": host.get("NetworkMode"),
        "security_opt": host.get("SecurityOpt") or [],
        "memory": host.get("Memory") or None,
        "pids_limit": host.get("PidsLimit") or None,
        "mounts": sorted(f"{m.get('Type', 'volume')}:{m.get('Target')}" for m in host.get("Mounts") or [])
                  or sorted(host.get("Binds") or []),
    }


class StageRunner:
    """Runs stage containers for one build and hands their outputs to the store keeper."""

    def __init__(self, client: docker.DockerClient, store: Store, log: IO[str], progress: Progress,
                 limits: StageLimits, keep_work: bool = False) -> None:
        self.client, self.store, self.log, self.progress = client, store, log, progress
        self.limits, self.keep_work = limits, keep_work
        self.kept: str | None = None  # the scratch volume a failed stage left (--keep-work)
        self.cancelled: set[str] = set()  # stages stopped because a sibling failed (or Ctrl-C)

    def cancel(self, stage: str) -> None:
        """Stops a stage that runs in another thread: its container goes (a running one is
        killed with it), so its run fails and cleans up; one not made yet is never started."""
        self.cancelled.add(stage)
        with contextlib.suppress(docker.errors.APIError):
            self.client.containers.get(f"liveorch-{self.store.build_id}-{stage}").remove(force=True)

    def scratch_name(self, stage: str) -> str:
        return f"liveorch-work-{self.store.build_id}-{stage}"

    def run(self, image: StageImage, spec: StageSpec, request: StageRequest, network: bool,
            files: dict[str, IO[bytes]]) -> StageRun:
        scratch = self.scratch_name(spec.name)
        container = None
        try:
            # Inside the try: a Ctrl-C while the volume or the container is being made
            # still cleans up both.
            self.client.volumes.create(scratch, labels={
                LABEL: "scratch", f"{LABEL}.build": self.store.build_id, f"{LABEL}.stage": spec.name,
                f"{LABEL}.store": self.store.name, f"{LABEL}.keep": "1" if self.keep_work else "0"})
            container = self._create(image, spec, scratch, network)
            if spec.name in self.cancelled:
                raise Interrupted(f"the {spec.name} stage was cancelled")
            privileges = container_privileges(container.attrs)
            self._prepare(container, spec, request, files)
            self._execute(container, spec)
            self._remove(container)
            container = None
            record, published = self.store.publish(scratch, spec, request.key)
        except KeyboardInterrupt:
            self._stop(container, spec.name)
            self._discard(scratch, container, keep=False)
            raise Interrupted(f"interrupted during the {spec.name} stage; finished stages stay cached") from None
        except BaseException:
            self._discard(scratch, container, keep=self.keep_work and spec.name not in self.cancelled)
            raise
        self._discard(scratch, None, keep=False)
        return StageRun(record, privileges, published)

    def _create(self, image: StageImage, spec: StageSpec, scratch: str, network: bool
                ) -> docker.models.containers.Container:
        return self.client.containers.create(
            image.tag,
            name=f"liveorch-{self.store.build_id}-{spec.name}",
            user=str(spec.user),
            labels={LABEL: "stage", f"{LABEL}.build": self.store.build_id, f"{LABEL}.stage": spec.name},
            volumes={self.store.name: {"bind": STORE_MOUNT, "mode": "ro"}, scratch: {"bind": WORK_MOUNT, "mode": "rw"}},
            network_mode="bridge" if network else "none",
            cap_drop=[c for c in DOCKER_DEFAULT_CAPS if c not in spec.capabilities],
            security_opt=["no-new-privileges"],
            privileged=False,
            mem_limit=self.limits.memory,
            memswap_limit=self.limits.memory,
            pids_limit=self.limits.pids,
            environment={"PYTHONUNBUFFERED": "1"},
        )

    def _prepare(self, container: docker.models.containers.Container, spec: StageSpec, request: StageRequest,
                 files: dict[str, IO[bytes]]) -> None:
        """The request, and the stage's own folders and result file, owned by the user it runs as."""
        uid = spec.user
        write_tree(container, PurePosixPath(WORK_MOUNT), {
            REQUEST_FILE: Entry(data=request.to_json().encode()),
            CLAIMS_FILE: Entry(data=b"", uid=uid),
            "out": Entry(uid=uid), "tmp": Entry(uid=uid), "files": Entry(uid=uid),
        }, {f"files/{name}": handle for name, handle in files.items()})

    def _execute(self, container: docker.models.containers.Container, spec: StageSpec) -> None:
        tail: list[str] = []
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            with contextlib.suppress(docker.errors.APIError):
                container.kill()

        timer = threading.Timer(self.limits.timeout, expire)
        timer.daemon = True
        container.start()
        timer.start()
        try:
            self._follow(container, spec.name, tail)
            code = container.wait().get("StatusCode", 1)
        finally:
            timer.cancel()
        if code != 0 or timed_out.is_set():
            message = failure_message(spec.name, code, tail, container, self.store.name,
                                      self.limits.timeout if timed_out.is_set() else None)
            self._keep_log(container, tail)
            raise StageFailed(message, hint="\n".join(tail[-TAIL_LINES:]))

    def _follow(self, container: docker.models.containers.Container, stage: str, tail: list[str]) -> None:
        pending = b""
        for chunk in container.logs(stream=True, follow=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                self.log.write(f"[{stage}] {line}\n")
                tail.append(line)
                del tail[:-200]
                step = parse_progress(line)
                if step is not None:
                    self.progress.advance(stage, *step)
                else:
                    self.progress.line(stage, line)
        self.log.flush()

    def _keep_log(self, container: docker.models.containers.Container, tail: list[str]) -> None:
        if self.keep_work:
            with contextlib.suppress(docker.errors.APIError):
                write_tree(container, PurePosixPath(WORK_MOUNT), {"stage.log": Entry(data=container.logs())})

    def _stop(self, container: docker.models.containers.Container | None, stage: str) -> None:
        if container is None:  # the engine may have made it before the answer came back
            with contextlib.suppress(docker.errors.APIError):
                container = self.client.containers.get(f"liveorch-{self.store.build_id}-{stage}")
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                container.stop(timeout=0)
            self._remove(container)

    def _remove(self, container: docker.models.containers.Container) -> None:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)

    def _discard(self, scratch: str, container: docker.models.containers.Container | None, keep: bool) -> None:
        """Remove the run's container and scratch volume, or keep the volume (--keep-work)."""
        if container is not None:
            self._remove(container)
        if keep:
            self.kept = scratch
            self.log.write(f"work kept: volume {scratch}\n")
            return
        self._remove_volume(scratch)

    def _remove_volume(self, scratch: str) -> None:
        """The engine may still be removing the volume's container (a cancelled stage's is
        removed from another thread): "in use" is retried for a few seconds."""
        for _ in range(40):
            try:
                self.client.volumes.get(scratch).remove(force=True)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError:
                time.sleep(0.25)
