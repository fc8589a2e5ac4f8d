"""The store as the host sees it: the volume of published stage results and the package pool.

Every stage container mounts the store read-only; only the store keeper (its own image,
running no user code) writes into it. The host reads small files and exports results
through a never-started probe container, and asks the keeper for anything that needs
trust: publishing a stage's outputs, verifying a cache entry, removing entries.

A running build leases what it uses (leases/<build>/<stage>-<key>, written before the
entry is looked up), so `cache prune` never removes an entry a running build relies on.
What it publishes is traced to it (the build, the description, the profiles; see
`Provenance`) so `cache ls` can say where each entry came from.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import docker
import docker.errors

from liveorch.orchestrator.engine import LABEL, ensure_volume
from liveorch.orchestrator.errors import EngineError, Interrupted, StageFailed
from liveorch.orchestrator.store_keeper import LEASES_DIR
from liveorch.orchestrator.volume_io import Entry, export_file, read_file, write_tree
from liveorch.stages.contract import RECORD_FILE, STORE_MOUNT, WORK_MOUNT, ContractError, Record, StageSpec, entry_path

DEFAULT_STORE = "liveorch-artifacts"
STORE = PurePosixPath(STORE_MOUNT)
# How long a lease of a build nobody told the keeper about counts as live (it just started).
LEASE_GRACE = 600
NO_SPACE = "no space left on device"


def keeper_failure(stage: str, reason: str, store: str) -> StageFailed:
    """The keeper's refusal of a stage's outputs is that stage's failure."""
    if NO_SPACE in reason:
        return StageFailed(f"{stage} stage: publishing its outputs failed: {NO_SPACE} (the store volume {store!r} "
                           "or the engine's storage is full; try `liveorch cache prune`)")
    return StageFailed(f"{stage} stage: its outputs were refused: {reason}")


@dataclass(frozen=True)
class Provenance:
    """Which description and profiles a build's entries come from, for `cache ls`. The keeper
    keeps it beside each entry the build publishes, never in the entry or its key: a stage's
    outputs and key depend on its inputs alone, and the same entry serves every description
    that leads to it. Only the path and the profiles: overrides (a --set-repo URL may carry
    credentials) stay out."""

    description: str
    profiles: tuple[str, ...] = ()

    def as_args(self) -> dict[str, Any]:
        return {"description": self.description, "profiles": list(self.profiles)}


class Store:
    """One build's handle on the store volume: a probe for reads, the keeper for trust."""

    def __init__(self, client: docker.DockerClient, name: str, keeper_image: str, build_id: str,
                 provenance: Provenance | None = None) -> None:
        self.client, self.name, self.keeper_image, self.build_id = client, name, keeper_image, build_id
        self.provenance = provenance
        ensure_volume(client, name, {LABEL: "store"})
        self.probe = client.containers.create(
            keeper_image, entrypoint=["true"], command=[], network_mode="none",
            volumes={name: {"bind": STORE_MOUNT, "mode": "rw"}},
            # Who holds it: `clean` and `cache prune` leave a running build's leases and volumes alone.
            labels={LABEL: "probe", f"{LABEL}.build": build_id, f"{LABEL}.host": socket.gethostname(),
                    f"{LABEL}.pid": str(os.getpid())},
            name=f"liveorch-{build_id}-probe",
        )

    def close(self) -> None:
        with contextlib.suppress(docker.errors.APIError):
            self.probe.remove(force=True)

    def record(self, stage: str, key: str) -> Record | None:
        """The entry's record, as the keeper wrote it; None when there is no such entry."""
        data = read_file(self.probe, entry_path(STORE, stage, key) / RECORD_FILE)
        if data is None:
            return None
        try:
            return Record.from_json(data.decode())
        except (ValueError, ContractError):
            return None

    def lease(self, stage: str, key: str) -> None:
        write_tree(self.probe, STORE, {
            LEASES_DIR: Entry(), f"{LEASES_DIR}/{self.build_id}": Entry(),
            f"{LEASES_DIR}/{self.build_id}/{stage}-{key}": Entry(data=b""),
        })

    def read(self, stage: str, key: str, output: str) -> bytes | None:
        return read_file(self.probe, entry_path(STORE, stage, key) / output)

    def export(self, stage: str, key: str, output: str, target: Path, sha256: str) -> None:
        export_file(self.probe, entry_path(STORE, stage, key) / output, target, sha256)

    def verify(self, entries: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Entries whose files no longer hash to their records, with the reason."""
        wanted = [list(e) for e in entries]
        if not wanted:
            return {}
        bad = self.keeper("verify", {"entries": wanted})["bad"]
        return {tuple(name.split("/", 1)): reason for name, reason in bad.items()}  # type: ignore[misc]

    def drop(self, entries: Iterable[tuple[str, str]]) -> None:
        wanted = [list(e) for e in entries]
        if wanted:
            self.keeper("drop", {"entries": wanted})

    def publish(self, scratch: str, spec: StageSpec, key: str) -> tuple[Record, bool]:
        """The keeper copies the outputs in, hashing them; returns the entry's record and
        whether this build published it (False: a concurrent build had already)."""
        args = {"stage": spec.name, "key": key, "build": self.build_id, "pooled": spec.pooled,
                "outputs": [{"name": o.name, "optional": o.optional} for o in spec.outputs],
                "origin": self.provenance.as_args() if self.provenance else None}
        try:
            answer = self.keeper("publish", args, scratch=scratch)
        except EngineError as error:
            raise keeper_failure(spec.name, error.message.removeprefix("store keeper: publish: "), self.name) from None
        return Record.from_json(json.dumps(answer["record"])), bool(answer["published"])

    def import_entry(self, spec: StageSpec, key: str, entry_tar: IO[bytes]) -> Record:
        """An entry from elsewhere (a registry): its files (a tar of out/ and result.json)
        go into a scratch volume of their own, and the keeper publishes them as it would a
        stage's, hashing every byte and checking them against the stage's contract."""
        scratch = f"liveorch-work-{self.build_id}-{spec.name}-import"
        self.client.volumes.create(scratch, labels={LABEL: "scratch", f"{LABEL}.build": self.build_id,
                                                    f"{LABEL}.stage": spec.name, f"{LABEL}.store": self.name})
        probe = None
        try:
            probe = self.client.containers.create(self.keeper_image, entrypoint=["true"], command=[],
                                                  network_mode="none", labels={LABEL: "import"},
                                                  volumes={scratch: {"bind": WORK_MOUNT, "mode": "rw"}})
            if not probe.put_archive(WORK_MOUNT, entry_tar):
                raise EngineError(f"could not write the {spec.name} entry into a scratch volume")
            return self.publish(scratch, spec, key)[0]
        finally:
            if probe is not None:
                with contextlib.suppress(docker.errors.APIError):
                    probe.remove(force=True)
            with contextlib.suppress(docker.errors.APIError):
                self.client.volumes.get(scratch).remove(force=True)

    @contextlib.contextmanager
    def open_output(self, stage: str, key: str, output: str, sha256: str) -> Iterator[IO[bytes]]:
        """One output as a host file (streamed out and checked), for uploading."""
        with tempfile.TemporaryDirectory(prefix="liveorch-out-") as folder:
            path = Path(folder) / "output"
            self.export(stage, key, output, path, sha256)
            with path.open("rb") as handle:
                yield handle

    def keeper(self, command: str, args: dict[str, Any], scratch: str | None = None) -> dict[str, Any]:
        return run_keeper(self.client, self.keeper_image, self.name, command, args, scratch,
                          {f"{LABEL}.build": self.build_id})


def run_keeper(client: docker.DockerClient, image: str, store: str, command: str, args: dict[str, Any],
               scratch: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """One keeper command in its own container: no network, no capabilities, the store
    read-write, a stage's scratch volume (for publish) read-only."""
    volumes = {store: {"bind": STORE_MOUNT, "mode": "rw"}}
    if scratch:
        volumes[scratch] = {"bind": WORK_MOUNT, "mode": "ro"}
    container = client.containers.create(
        image, command=[command, json.dumps(args)], user="0", network_mode="none", cap_drop=["ALL"],
        security_opt=["no-new-privileges"], volumes=volumes, labels={LABEL: "keeper", **(labels or {})})
    try:
        container.start()
        code = container.wait().get("StatusCode", 1)
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        err = container.logs(stdout=False, stderr=True).decode(errors="replace").strip()
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted during the store keeper's {command}") from None
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    if code != 0:
        last = (err.splitlines() or [f"exit code {code}"])[-1]
        raise EngineError(last if last.startswith("store keeper:") else f"store keeper: {command}: {last}")
    return json.loads(out.strip().splitlines()[-1])
