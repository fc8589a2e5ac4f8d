"""Runs stage containers through the Docker Engine API, and moves files in and out of the
artifact volume.

The artifact volume is a content-addressed store: each stage's outputs live at
/artifacts/<stage>/<key>. Requests go in and results come out with the archive API on a
"probe" container that is created but never started, so no helper process runs and the
same calls work against a remote or rootless engine (Podman's Docker API included).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import socket
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import docker
import docker.errors
import requests

from liveorch.orchestrator.errors import EngineError, Interrupted, StageFailed
from liveorch.orchestrator.images import StageImage
from liveorch.orchestrator.progress import Progress
from liveorch.stages.contract import (
    ARTIFACTS_MOUNT,
    REQUEST_FILE,
    RESULT_FILE,
    STAGE_CAPABILITIES,
    StageRequest,
    StageResult,
    stage_dir,
)

DEFAULT_VOLUME = "liveorch-artifacts"
LABEL = "org.liveorch"
DOCKER_DEFAULT_CAPS = (
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
)
ERROR_PREFIX = "liveorch-stage-error: "
TAIL_LINES = 30


def connect(host: str | None = None) -> docker.DockerClient:
    """A client for DOCKER_HOST (or `host`), with the API version the engine speaks."""
    try:
        client = docker.DockerClient(base_url=host, version="auto") if host else docker.from_env(version="auto")
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as error:
        where = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        raise EngineError(f"no container engine answers at {where}: {str(error).splitlines()[0][:200]}",
                          hint="start dockerd (or set DOCKER_HOST / --engine-host to a Podman socket)") from None
    return client


def remove_volume(client: docker.DockerClient, name: str) -> list[str]:
    """Remove an artifact volume and any container still using it; returns those containers."""
    leftovers = client.containers.list(all=True, filters={"volume": name})
    for container in leftovers:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        client.volumes.get(name).remove(force=True)
    return [c.name for c in leftovers]


class _StreamReader(io.RawIOBase):
    """A file object over the engine's chunked archive stream, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


@dataclass
class StageRun:
    result: StageResult
    cached: bool
    seconds: float


class ArtifactVolume:
    """The artifact volume and the never-started probe container that reads and writes it."""

    def __init__(self, client: docker.DockerClient, name: str, probe_image: str, build_id: str) -> None:
        self.client = client
        self.name = name
        self.build_id = build_id
        try:
            client.volumes.get(name)
        except docker.errors.NotFound:
            client.volumes.create(name, labels={LABEL: "artifacts"})
        self.probe = client.containers.create(
            probe_image, entrypoint=["true"], command=[], network_mode="none",
            volumes={name: {"bind": ARTIFACTS_MOUNT, "mode": "rw"}},
            # Who holds it: `liveorch clean` leaves a running build's containers and work alone.
            labels={LABEL: "probe", f"{LABEL}.build": build_id, f"{LABEL}.host": socket.gethostname(),
                    f"{LABEL}.pid": str(os.getpid())},
            name=f"liveorch-{build_id}-probe",
        )

    def close(self) -> None:
        with contextlib.suppress(docker.errors.APIError):
            self.probe.remove(force=True)

    def read(self, path: PurePosixPath) -> bytes | None:
        try:
            chunks, _ = self.probe.get_archive(str(path))
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BufferedReader(_StreamReader(iter(chunks))), mode="r|") as tar:
            for member in tar:
                handle = tar.extractfile(member)
                if handle is not None:
                    return handle.read()
        return None

    def write_tree(self, parent: PurePosixPath, entries: dict[str, bytes | None]) -> None:
        """Create dirs (value None, world-writable so unprivileged stages can use them) and files."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in entries.items():
                info = tarfile.TarInfo(name)
                info.mtime = int(time.time())
                if data is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o777
                    tar.addfile(info)
                else:
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))
        if not self.probe.put_archive(str(parent), buffer.getvalue()):
            raise EngineError(f"could not write into the artifact volume at {parent}")

    def exists(self, path: PurePosixPath) -> bool:
        try:
            chunks, _ = self.probe.get_archive(str(path))
        except docker.errors.NotFound:
            return False
        chunks.close()
        return True

    def put_file(self, directory: PurePosixPath, name: str, source: IO[bytes], size: int) -> None:
        """Stream one file into `directory` (created, world-writable) without holding it in memory."""
        with tempfile.TemporaryFile() as spool:
            with tarfile.open(fileobj=spool, mode="w") as tar:
                parts = directory.relative_to(ARTIFACTS_MOUNT).parts
                for depth in range(1, len(parts) + 1):
                    info = tarfile.TarInfo("/".join(parts[:depth]))
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o777, int(time.time())
                    tar.addfile(info)
                info = tarfile.TarInfo("/".join([*parts, name]))
                info.size, info.mode, info.mtime = size, 0o644, int(time.time())
                tar.addfile(info, source)
            spool.seek(0)
            if not self.probe.put_archive(ARTIFACTS_MOUNT, spool):
                raise EngineError(f"could not write {name} into the artifact volume")

    def export(self, path: PurePosixPath, target: Path, sha256: str | None = None) -> None:
        """Copy one file out of the volume to `target`, atomically: a temp name, then rename."""
        chunks, _ = self.probe.get_archive(str(path))
        partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
        digest = hashlib.sha256()
        try:
            with tarfile.open(fileobj=io.BufferedReader(_StreamReader(iter(chunks)), 1 << 20), mode="r|") as tar:
                member = next(iter(tar))
                source = tar.extractfile(member)
                if source is None:
                    raise EngineError(f"{path} is not a file in the artifact volume")
                with partial.open("wb") as sink:
                    while block := source.read(1 << 20):
                        digest.update(block)
                        sink.write(block)
            if sha256 and digest.hexdigest() != sha256:
                raise EngineError(f"{path} changed on its way out of the volume (sha256 mismatch)")
            partial.chmod(0o644)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)


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
        "mounts": sorted(f"{m.get('Type', 'volume')}:{m.get('Target')}" for m in host.get("Mounts") or [])
                  or sorted(host.get("Binds") or []),
    }


class StageRunner:
    """Runs one stage container per call; caches by key through the artifact volume."""

    def __init__(self, client: docker.DockerClient, volume: ArtifactVolume, log: IO[str],
                 progress: Progress, keep_work: bool = False) -> None:
        self.client = client
        self.volume = volume
        self.log = log
        self.progress = progress
        # --keep-work: a failed stage's work directory moves to kept/<build>-<stage> (with the
        # container's output as stage.log) instead of being removed; `liveorch clean` removes it.
        self.keep_work = keep_work
        self.kept: PurePosixPath | None = None
        # What the engine says each stage container was given: the build report keeps it,
        # so anyone can check that no stage ran privileged (tests do).
        self.containers: dict[str, dict[str, object]] = {}

    def cached(self, stage: str, key: str) -> StageResult | None:
        data = self.volume.read(stage_dir(stage, key) / RESULT_FILE)
        return StageResult.from_json(data.decode()) if data else None

    def run(self, image: StageImage, request: StageRequest, network: bool) -> StageResult:
        stage, key = request.stage, request.key
        work_name = f".work-{key[:16]}-{self.volume.build_id}"  # the build id: see cache.remove_leftovers
        work = PurePosixPath(ARTIFACTS_MOUNT) / stage / work_name
        name = f"liveorch-{self.volume.build_id}-{stage}"
        keep = STAGE_CAPABILITIES[stage]
        container: docker.models.containers.Container | None = None
        tail: list[str] = []
        try:
            # Inside the try: a Ctrl-C while the work directory or the container is being
            # made still cleans up both.
            self.volume.write_tree(PurePosixPath(ARTIFACTS_MOUNT), {
                stage: None,
                f"{stage}/{work_name}": None,
                f"{stage}/{work_name}/{REQUEST_FILE}": request.to_json().encode(),
            })
            container = self.client.containers.create(
                image.tag,
                command=[str(work)],
                name=name,
                labels={LABEL: "stage", f"{LABEL}.build": self.volume.build_id, f"{LABEL}.stage": stage},
                volumes={self.volume.name: {"bind": ARTIFACTS_MOUNT, "mode": "rw"}},
                network_mode="bridge" if network else "none",
                cap_drop=[c for c in DOCKER_DEFAULT_CAPS if c not in keep],
                security_opt=["no-new-privileges"],
                privileged=False,
                environment={"PYTHONUNBUFFERED": "1"},
            )
            self.containers[stage] = container_privileges(container.attrs)
            container.start()
            self._follow(container, stage, tail)
            status = container.wait()
            code = status.get("StatusCode", 1)
            if code != 0:
                self._discard(image, work, stage, container)
                raise StageFailed(self._failure(stage, code, tail, container), hint="\n".join(tail[-TAIL_LINES:]))
        except KeyboardInterrupt:
            if container is None:  # the engine may have made it before the answer came back
                with contextlib.suppress(docker.errors.APIError):
                    container = self.client.containers.get(name)
            if container is not None:
                with contextlib.suppress(docker.errors.APIError):
                    container.stop(timeout=0)
            self._discard(image, work, stage, container)
            raise Interrupted(f"interrupted during the {stage} stage; finished stages stay cached") from None
        finally:
            if container is not None:
                with contextlib.suppress(docker.errors.APIError):
                    container.remove(force=True)
        result = self.cached(stage, key)
        if result is None:
            raise StageFailed(f"{stage} stage exited 0 but left no result record")
        return result

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
                self.progress.line(stage, line)
        self.log.flush()

    def _failure(self, stage: str, code: int, tail: list[str], container: docker.models.containers.Container
                 ) -> str:
        if any("No space left on device" in line for line in tail):
            return (f"{stage} stage failed: no space left on device (the artifact volume {self.volume.name!r} "
                    "or the engine's storage is full; try `liveorch cache prune`)")
        errors = [line[len(ERROR_PREFIX):] for line in tail if line.startswith(ERROR_PREFIX)]
        if errors:
            return f"{stage} stage failed: {errors[-1]}"
        try:
            container.reload()
            if container.attrs["State"].get("OOMKilled"):
                return f"{stage} stage was killed: out of memory"
        except docker.errors.APIError:
            pass
        if code in (137, 143):
            return f"{stage} stage was killed from outside (exit {code})"
        last = next((line for line in reversed(tail) if line.strip()), "no output")
        return f"{stage} stage failed with exit code {code}: {last[:300]}"

    def _discard(self, image: StageImage, work: PurePosixPath, stage: str,
                 container: docker.models.containers.Container | None) -> None:
        """Remove a failed run's work directory (or keep it, with --keep-work); a root helper
        can move or remove any owner's files."""
        kept = PurePosixPath(ARTIFACTS_MOUNT) / "kept" / f"{self.volume.build_id}-{stage}"
        if self.keep_work:
            with contextlib.suppress(docker.errors.APIError):
                output = container.logs() if container is not None else b""
                self.volume.write_tree(PurePosixPath(ARTIFACTS_MOUNT), {"kept": None})
                self._helper(image, ["mv", "--", str(work), str(kept)])
                self.volume.write_tree(kept, {"stage.log": output})
                self.kept = kept
                self.log.write(f"[{stage}] work kept: {kept} in volume {self.volume.name}\n")
                return
        with contextlib.suppress(docker.errors.APIError):
            self._helper(image, ["rm", "-rf", "--", str(work)])

    def _helper(self, image: StageImage, argv: list[str]) -> None:
        self.client.containers.run(
            image.tag, entrypoint=argv[:1], command=argv[1:], user="0", remove=True,
            network_mode="none", volumes={self.volume.name: {"bind": ARTIFACTS_MOUNT, "mode": "rw"}},
            labels={LABEL: "cleanup", f"{LABEL}.build": self.volume.build_id},
        )
