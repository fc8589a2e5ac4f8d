"""The stage cache: list the store, prune it, clean up what ended builds left.

The store holds finished stages' results and the package pool; the keeper (its own
container, see store_keeper.py) does every change to it. A build's scratch volumes (one
per stage run, labelled with the build and the store) exist only while it runs, unless a
failed stage's was kept (`run --keep-work`). A build is running while its probe container
exists and its process is alive: prune and clean never touch what a running build uses.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import docker
import docker.errors

from liveorch.orchestrator.engine import LABEL
from liveorch.orchestrator.images import STORE_IMAGE, ensure_image
from liveorch.orchestrator.store import LEASE_GRACE, run_keeper

UNFINISHED_GRACE = 6 * 3600


@dataclass(frozen=True)
class CacheEntry:
    """result (a finished stage), pool (a package), work (a running or interrupted build's
    scratch volume) or kept (a failed stage's scratch volume, kept with --keep-work)."""

    stage: str
    key: str
    bytes: int
    mtime: float
    kind: str
    build: str | None = None


def _keeper(client: docker.DockerClient, volume: str, command: str, args: dict,
            say: Callable[[str], None] = lambda _: None) -> dict:
    image = ensure_image(client, STORE_IMAGE, say)
    return run_keeper(client, image.tag, volume, command, args, labels={f"{LABEL}.role": "cache"})


def scratch_volumes(client: docker.DockerClient, volume: str) -> list[docker.models.volumes.Volume]:
    found = client.volumes.list(filters={"label": f"{LABEL}=scratch"})
    return [v for v in found if (v.attrs.get("Labels") or {}).get(f"{LABEL}.store") == volume]


def _scratch_entry(scratch: docker.models.volumes.Volume) -> CacheEntry:
    labels = scratch.attrs.get("Labels") or {}
    created = scratch.attrs.get("CreatedAt", "")[:19]
    try:
        mtime = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError:
        mtime = 0.0
    return CacheEntry(labels.get(f"{LABEL}.stage", "?"), scratch.name, 0, mtime,
                      "kept" if labels.get(f"{LABEL}.keep") == "1" else "work", labels.get(f"{LABEL}.build"))


def list_entries(client: docker.DockerClient, volume: str) -> list[CacheEntry]:
    try:
        client.volumes.get(volume)
    except docker.errors.NotFound:
        return []
    stored = [CacheEntry(**e) for e in _keeper(client, volume, "list", {})["entries"]]
    return stored + [_scratch_entry(v) for v in scratch_volumes(client, volume)]


def prune(client: docker.DockerClient, volume: str, older_than: float | None) -> list[CacheEntry]:
    """Remove results and pool files unused for `older_than` seconds (all when None), except
    what a running build holds; then what ended builds left."""
    live = live_builds(client, volume)
    answer = _keeper(client, volume, "prune", {"older_than": older_than, "live": sorted(live), "grace": LEASE_GRACE})
    return [CacheEntry(**e) for e in answer["removed"]] + remove_leftovers(client, volume, live)


def remove_leftovers(client: docker.DockerClient, volume: str, live: set[str]) -> list[CacheEntry]:
    """Scratch volumes of builds that ended (kept ones included), and the leases and
    half-published entries they left in the store."""
    removed = []
    for scratch in scratch_volumes(client, volume):
        entry = _scratch_entry(scratch)
        if entry.build not in live:
            with contextlib.suppress(docker.errors.APIError):
                scratch.remove(force=True)
                removed.append(entry)
    with contextlib.suppress(docker.errors.NotFound):
        client.volumes.get(volume)
        _keeper(client, volume, "forget", {"live": sorted(live), "grace": LEASE_GRACE})
    return removed


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


def remove_store(client: docker.DockerClient, volume: str) -> bool:
    """`clean --all`: the store volume itself; False when there was none."""
    try:
        client.volumes.get(volume).remove(force=True)
    except docker.errors.NotFound:
        return False
    return True
