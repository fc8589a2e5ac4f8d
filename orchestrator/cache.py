"""The stage cache in the artifact volume: list entries, prune old ones, clean leftovers.

The volume holds the cache (finished stages' results, the package pool, uploaded
description files) and, only while a build runs, that build's work directories. What a
build leaves after it ends is a leftover: a work directory of an interrupted or killed
build, or one kept on purpose (`run --keep-work`) under kept/<build>-<stage>.

Entries are read and removed by a short-lived container on the volume (the engine has no
API to list a volume's files), started from a stage image that is already present.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

import docker

from liveorch.orchestrator.engine import LABEL
from liveorch.orchestrator.images import image_tag
from liveorch.stages.contract import ARTIFACTS_MOUNT

# Runs inside the container: one JSON line per cache entry (stage, key, bytes, mtime).
_LIST = f"""
import json, os, pathlib
root = pathlib.Path("{ARTIFACTS_MOUNT}")
for stage in sorted(p for p in root.iterdir() if p.is_dir()):
    for entry in sorted(stage.iterdir()):
        size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file() and not f.is_symlink())
        result = entry / "result.json"
        mtime = result.stat().st_mtime if result.exists() else entry.stat().st_mtime
        print(json.dumps({{"stage": stage.name, "key": entry.name, "bytes": size, "mtime": mtime,
                          "complete": result.exists()}}))
"""


UNFINISHED_GRACE = 6 * 3600
KEPT = "kept"
WORK_PREFIXES = (".work-", ".retired-")


@dataclass(frozen=True)
class CacheEntry:
    stage: str
    key: str
    bytes: int
    mtime: float
    complete: bool

    @property
    def kind(self) -> str:
        """result (a finished stage), work (of a running or interrupted build), kept
        (a failed stage's work, kept with --keep-work) or store (package pool, description files)."""
        if self.stage == KEPT:
            return "kept"
        if self.key.startswith(WORK_PREFIXES):
            return "work"
        return "result" if self.complete else "store"

    @property
    def build(self) -> str | None:
        """The build a work directory belongs to (.work-<key>-<build>), when its name says."""
        parts = self.key.split("-")
        return parts[2] if self.key.startswith(".work-") and len(parts) == 3 else None


def _run(client: docker.DockerClient, volume: str, argv: list[str]) -> str:
    output = client.containers.run(
        image_tag("checksum"), entrypoint=argv[:1], command=argv[1:], user="0", remove=True,
        network_mode="none", volumes={volume: {"bind": ARTIFACTS_MOUNT, "mode": "rw"}},
        labels={LABEL: "cache"},
    )
    return output.decode()


def list_entries(client: docker.DockerClient, volume: str) -> list[CacheEntry]:
    text = _run(client, volume, ["python3", "-c", _LIST])
    return [CacheEntry(**json.loads(line)) for line in text.splitlines() if line.strip()]


def _remove(client: docker.DockerClient, volume: str, entries: list[CacheEntry]) -> None:
    paths = [f"{ARTIFACTS_MOUNT}/{e.stage}/{e.key}" for e in entries]
    for start in range(0, len(paths), 200):
        _run(client, volume, ["rm", "-rf", "--", *paths[start:start + 200]])


def prune(client: docker.DockerClient, volume: str, older_than: float | None, now: float) -> list[CacheEntry]:
    """Remove entries older than `older_than` seconds (all when None), and work dirs that
    interrupted stages left (after a grace period, so a running build keeps its own)."""
    doomed = [e for e in list_entries(client, volume)
              if older_than is None or now - e.mtime > older_than
              or (e.kind == "work" and now - e.mtime > UNFINISHED_GRACE)]
    _remove(client, volume, doomed)
    return doomed


def remove_leftovers(client: docker.DockerClient, volume: str, live: set[str]) -> list[CacheEntry]:
    """Remove what ended builds left: kept work, and work directories of builds not in `live`
    (a work directory without a build id in its name counts as left over after the grace period)."""
    now = datetime.now(UTC).timestamp()
    doomed = [e for e in list_entries(client, volume)
              if e.kind == "kept" or (e.kind == "work" and (e.build not in live if e.build
                                                              else now - e.mtime > UNFINISHED_GRACE))]
    _remove(client, volume, doomed)
    return doomed


def _alive(container: docker.models.containers.Container) -> bool:
    """Whether the build holding this probe container still runs: its process on this host,
    or (a build on another host sharing the engine) younger than the grace period."""
    labels = container.labels
    pid = labels.get(f"{LABEL}.pid", "")
    if labels.get(f"{LABEL}.host") == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    created = datetime.strptime(container.attrs.get("Created", "")[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return datetime.now(UTC).timestamp() - created.timestamp() < UNFINISHED_GRACE


def live_builds(client: docker.DockerClient, volume: str) -> set[str]:
    """Ids of the builds still running on `volume`: each holds a probe container while it runs."""
    probes = client.containers.list(all=True, filters={"label": f"{LABEL}=probe", "volume": volume})
    return {c.labels.get(f"{LABEL}.build", "") for c in probes if _alive(c)}


def remove_stopped_containers(client: docker.DockerClient, volume: str, live: set[str]) -> list[str]:
    """Containers liveorch created on `volume` that are not running and belong to no live
    build (a killed orchestrator leaves them); other volumes' builds are not touched."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL, "volume": volume}):
        if container.status != "running" and container.labels.get(f"{LABEL}.build") not in live:
            container.remove(force=True)
            removed.append(container.name)
    return removed
