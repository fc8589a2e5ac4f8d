"""The stage cache in the artifact volume: list entries, prune old ones.

Entries are read and removed by a short-lived container on the volume (the engine has no
API to list a volume's files), started from a stage image that is already present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import docker

from orchestrator.engine import LABEL
from orchestrator.images import image_tag
from stages.contract import ARTIFACTS_MOUNT

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


@dataclass(frozen=True)
class CacheEntry:
    stage: str
    key: str
    bytes: int
    mtime: float
    complete: bool


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


def prune(client: docker.DockerClient, volume: str, older_than: float | None, now: float) -> list[CacheEntry]:
    """Remove entries older than `older_than` seconds (all when None), and work dirs that
    interrupted stages left (after a grace period, so a running build keeps its own)."""
    doomed = [e for e in list_entries(client, volume)
              if older_than is None or now - e.mtime > older_than
              or (not e.complete and now - e.mtime > UNFINISHED_GRACE)]
    paths = [f"{ARTIFACTS_MOUNT}/{e.stage}/{e.key}" for e in doomed]
    for start in range(0, len(paths), 200):
        _run(client, volume, ["rm", "-rf", "--", *paths[start:start + 200]])
    return doomed


def remove_stopped_containers(client: docker.DockerClient) -> list[str]:
    """Containers liveorch created that are not running (a killed orchestrator leaves them)."""
    removed = []
    for container in client.containers.list(all=True, filters={"label": LABEL}):
        if container.status != "running":
            container.remove(force=True)
            removed.append(container.name)
    return removed
