"""The stage cache: list the store, prune it, clean up what ended builds left.

The store holds finished stages' results and the package pool; the keeper (its own
container, see store_keeper.py) does every change to it. A build's scratch volumes (one
per stage run, labelled with the build and the store) exist only while it runs, unless a
failed stage's was kept (`run --keep-work`). A build is running while its probe container
exists and its process is alive: prune and clean never touch what a running build uses.

Each result carries its origin (the build, description and profiles that published it), kept
by the keeper beside the entry; entries published before origins were kept have none.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import docker
import docker.errors

from liveorch.orchestrator.engine import LABEL
from liveorch.orchestrator.images import STORE_IMAGE, ensure_image
from liveorch.orchestrator.store import LEASE_GRACE, run_keeper

UNFINISHED_GRACE = 6 * 3600


class EntryKind(StrEnum):
    RESULT = "result"  # a finished stage's outputs
    POOL = "pool"  # a downloaded package
    WORK = "work"  # a running or interrupted build's scratch volume
    KEPT = "kept"  # a failed stage's scratch volume, kept with --keep-work


@dataclass(frozen=True)
class Origin:
    """The build that published an entry, its description (absolute path) and profiles."""

    build: str | None
    description: str | None
    profiles: tuple[str, ...] = ()

    @classmethod
    def from_keeper(cls, found: Any) -> Origin | None:
        """What the keeper read from origins/; anything malformed is no origin at all."""
        if not isinstance(found, dict):
            return None
        text = {name: value if isinstance(value, str) else None for name, value in found.items()}
        profiles = found.get("profiles")
        return cls(text.get("build"), text.get("description"),
                   tuple(p for p in profiles if isinstance(p, str)) if isinstance(profiles, list) else ())


@dataclass(frozen=True)
class CacheEntry:
    """mtime: the last use (a result's or package's; a scratch volume's creation).
    build: for scratch volumes, the build they belong to; results name theirs in origin."""

    stage: str
    key: str
    bytes: int
    mtime: float
    kind: EntryKind
    build: str | None = None
    origin: Origin | None = None

    @classmethod
    def from_keeper(cls, found: dict[str, Any]) -> CacheEntry:
        return cls(found["stage"], found["key"], int(found["bytes"]), float(found["mtime"]), EntryKind(found["kind"]),
                   origin=Origin.from_keeper(found.get("origin")))


@dataclass(frozen=True)
class Pruned:
    """What prune removed, and the bytes the store still holds (results and pool)."""

    removed: list[CacheEntry]
    remaining: int


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
    kind = EntryKind.KEPT if labels.get(f"{LABEL}.keep") == "1" else EntryKind.WORK
    return CacheEntry(labels.get(f"{LABEL}.stage", "?"), scratch.name, 0, mtime, kind, labels.get(f"{LABEL}.build"))


def list_entries(client: docker.DockerClient, volume: str) -> list[CacheEntry]:
    try:
        client.volumes.get(volume)
    except docker.errors.NotFound:
        return []
    stored = [CacheEntry.from_keeper(e) for e in _keeper(client, volume, "list", {})["entries"]]
    return stored + [_scratch_entry(v) for v in scratch_volumes(client, volume)]


def prune(client: docker.DockerClient, volume: str, older_than: float | None,
          max_bytes: int | None = None) -> Pruned:
    """Remove results and pool files unused for `older_than` seconds (all when None), then the
    least recently used until the store fits in `max_bytes`, except what a running build
    holds; then what ended builds left. The keeper chooses, so two prunes at once agree
    with the store rather than with a listing taken before the other one ran."""
    live = live_builds(client, volume)
    args = {"older_than": older_than, "max_bytes": max_bytes, "live": sorted(live), "grace": LEASE_GRACE}
    try:
        client.volumes.get(volume)
    except docker.errors.NotFound:
        return Pruned(remove_leftovers(client, volume, live), 0)
    answer = _keeper(client, volume, "prune", args)
    removed = [CacheEntry.from_keeper(e) for e in answer["removed"]]
    return Pruned(removed + remove_leftovers(client, volume, live), int(answer["remaining"]))


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
