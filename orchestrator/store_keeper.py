"""The store keeper: the only code that writes into the store, run in its own container.

It runs no user code and trusts nothing a stage left behind. `publish` copies a finished
stage's outputs out of its scratch volume (mounted read-only) into the store, hashing every
byte on the way, and writes the record those hashes go into; `verify` hashes a cache entry
again before it is used; `drop`, `prune`, `forget` and `list` look after the rest.

    python3 -m liveorch.orchestrator.store_keeper COMMAND JSON-ARGUMENT

Answers are one JSON document on stdout; a failure is one line on stderr and exit 1.
Store layout (under /store): <stage>/<key>/ (outputs + record.json), pool/<sha256>.deb,
leases/<build>/<stage>-<key> (what running builds use), origins/<stage>-<key>.json (which
build, description and profiles published an entry), .incoming/ and .trash/ (transient).

An entry's last use is its record's mtime (a pool file's own): publishing, and every
verified cache hit, sets it; `prune` removes the least recently used first.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from liveorch.stages.contract import (
    CLAIMS_FILE,
    MAX_CLAIMS_BYTES,
    POOL_DIR,
    RECORD_FILE,
    STORE_MOUNT,
    WORK_MOUNT,
    Artifact,
    Record,
    StageClaims,
    decode,
)

LEASES_DIR = "leases"
ORIGINS_DIR = "origins"
INCOMING_DIR = ".incoming"
TRASH_DIR = ".trash"
RESERVED = {POOL_DIR, LEASES_DIR, ORIGINS_DIR, INCOMING_DIR, TRASH_DIR}
CHUNK = 1 << 20
MAX_ORIGIN_TEXT = 4096


class KeeperError(Exception):
    """A refusal or failure, reported as one line."""


# --- reading a scratch volume without following anything --------------------------------

def _open_dir(path: str, dir_fd: int | None = None) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise KeeperError(f"{path} is not a directory (a symlink?): refused") from None
        raise


def _walk(dir_fd: int, prefix: str = "") -> Iterator[tuple[str, int, str]]:
    """(relative path, parent dir fd, name) of every regular file below dir_fd; anything
    else than files and directories (symlinks, devices, pipes) is refused."""
    for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
        relative = f"{prefix}{entry.name}"
        mode = entry.stat(follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            child = _open_dir(entry.name, dir_fd)
            try:
                yield from _walk(child, relative + "/")
            finally:
                os.close(child)
        elif stat.S_ISREG(mode):
            yield relative, dir_fd, entry.name
        else:
            raise KeeperError(f"output {relative} is not a regular file (symlink, device or pipe): refused")


def _copy_hashed(dir_fd: int, name: str, target: Path) -> Artifact:
    """Copy one file and hash the bytes written, so the record describes the store's copy."""
    source = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    digest, size = hashlib.sha256(), 0
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    try:
        with os.fdopen(source, "rb", closefd=False) as reader, target.open("xb") as writer:
            while chunk := reader.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                writer.write(chunk)
    finally:
        os.close(source)
    target.chmod(0o644)
    return Artifact(size=size, sha256=digest.hexdigest())


def _claims(work: Path) -> StageClaims:
    path = work / CLAIMS_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        raise KeeperError("the stage left no result (result.json)") from None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_CLAIMS_BYTES + 1)
    if len(data) > MAX_CLAIMS_BYTES:
        raise KeeperError("the stage's result.json is larger than 1 MiB: refused")
    try:
        return decode(StageClaims, json.loads(data), "result.json")
    except ValueError as error:
        raise KeeperError(f"the stage's result.json does not fit the contract: {error}") from None


# --- publish ------------------------------------------------------------------------------

def _check_declared(outputs: dict[str, Artifact], declared: list[dict[str, Any]]) -> None:
    def covers(spec: dict[str, Any], path: str) -> bool:
        return path.startswith(spec["name"]) if spec["name"].endswith("/") else path == spec["name"]

    undeclared = sorted(p for p in outputs if not any(covers(d, p) for d in declared))
    if undeclared or RECORD_FILE in outputs:
        raise KeeperError(f"the stage wrote outputs its contract does not declare: {', '.join(undeclared[:5])}")
    missing = [d["name"] for d in declared if not d["optional"] and not any(covers(d, p) for p in outputs)]
    if missing:
        raise KeeperError(f"the stage did not write its declared output(s) {', '.join(missing)}")
    if not outputs:  # every output optional (e.g. one per root layout), yet none written
        names = ", ".join(d["name"] for d in declared)
        raise KeeperError(f"the stage did not write any of its declared outputs {names}")


def _add_to_pool(store: Path, entry: Path, outputs: dict[str, Artifact], pooled: str | None) -> None:
    """New .debs join the package pool under their sha256, each a copy of its own; one
    already there was used again."""
    if not pooled:
        return
    pool = store / POOL_DIR
    pool.mkdir(mode=0o755, exist_ok=True)
    for name, artifact in outputs.items():
        target = pool / f"{artifact.sha256}{Path(name).suffix}"
        if not name.startswith(pooled):
            continue
        if target.is_file() and _sha256(target) == artifact.sha256:
            os.utime(target)  # used again: least recently used is what `prune --max-size` goes by
        else:
            partial = pool / f".{target.name}.{uuid.uuid4().hex[:8]}"
            shutil.copyfile(entry / name, partial)
            partial.chmod(0o644)
            os.replace(partial, target)


def _existing(target: Path) -> Record | None:
    try:
        return Record.from_json((target / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None


def _used(target: Path, record: Record) -> dict[str, Any]:
    """A concurrent build published the key first: this build uses that entry, which counts as a use."""
    with contextlib.suppress(OSError):
        os.utime(target / RECORD_FILE)
    return {"record": json.loads(record.to_json()), "published": False}


# --- origins: where an entry came from, beside it (never in it: its bytes and key stay the stage's) --

def _origin_path(store: Path, stage: str, key: str) -> Path:
    return store / ORIGINS_DIR / f"{stage}-{key}.json"


def _text(value: Any) -> str | None:
    return value[:MAX_ORIGIN_TEXT] if isinstance(value, str) else None


def write_origin(store: Path, stage: str, key: str, build: str, origin: Any) -> None:
    """The publishing build, its description and profiles; nothing when the host sent none.
    Replaced atomically, so a reader sees the old origin or the new one, never half of one."""
    if not isinstance(origin, dict):
        return
    profiles = origin.get("profiles")
    document = {"build": _text(build), "description": _text(origin.get("description")),
                "profiles": [p for p in map(_text, profiles) if p] if isinstance(profiles, list) else []}
    folder = store / ORIGINS_DIR
    folder.mkdir(mode=0o755, exist_ok=True)
    partial = folder / f".{stage}-{key}.{uuid.uuid4().hex[:8]}"
    partial.write_text(json.dumps(document))
    os.replace(partial, _origin_path(store, stage, key))


def read_origin(store: Path, stage: str, key: str) -> dict[str, Any] | None:
    """None for entries published before origins were kept, or by a build that sent none."""
    try:
        found = json.loads(_origin_path(store, stage, key).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def publish(store: Path, work: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Copy a finished stage's outputs into the store under its key, unless an entry for
    the key is there already (a concurrent build of the same inputs published first)."""
    stage, key = args["stage"], args["key"]
    if stage in RESERVED or "/" in stage or "/" in key or key.startswith("."):
        raise KeeperError(f"refused store name {stage}/{key}")
    target = store / stage / key
    existing = _existing(target)
    if existing is not None:
        return _used(target, existing)
    claims = _claims(work)
    incoming = store / INCOMING_DIR / f"{args['build']}-{stage}-{uuid.uuid4().hex[:8]}"
    incoming.mkdir(parents=True, mode=0o755)
    try:
        out = _open_dir(str(work / "out"))
        try:
            outputs = {rel: _copy_hashed(fd, name, incoming / rel) for rel, fd, name in _walk(out)}
        finally:
            os.close(out)
        _check_declared(outputs, args["outputs"])
        record = Record(stage, key, outputs, claims.tools, claims.facts, claims.seconds)
        (incoming / RECORD_FILE).write_text(record.to_json())
        _add_to_pool(store, incoming, outputs, args.get("pooled"))
        (store / stage).mkdir(mode=0o755, exist_ok=True)
        try:
            os.rename(incoming, target)
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            shutil.rmtree(incoming)
            existing = _existing(target)
            if existing is None:
                raise KeeperError(f"{stage}/{key} appeared without a record") from None
            return _used(target, existing)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    write_origin(store, stage, key, args["build"], args.get("origin"))
    return {"record": json.loads(record.to_json()), "published": True}


# --- verify, drop ---------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_entry(entry: Path, stage: str, key: str) -> str | None:
    """Why an entry cannot be trusted, or None when every file hashes to its record."""
    record = _existing(entry)
    if record is None:
        return "no readable record"
    if (record.stage, record.key) != (stage, key):
        return "its record names another entry"
    files: dict[str, Path] = {}
    for path in entry.rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            return f"{path.relative_to(entry)} is not a regular file"
        relative = path.relative_to(entry).as_posix()
        if path.is_file() and relative != RECORD_FILE:
            files[relative] = path
    if sorted(files) != sorted(record.outputs):
        return "its files are not the ones its record lists"
    for name, path in sorted(files.items()):
        if path.stat().st_size != record.outputs[name].size or _sha256(path) != record.outputs[name].sha256:
            return f"{name} does not match its sha256"
    return None


def verify(store: Path, args: dict[str, Any]) -> dict[str, Any]:
    bad: dict[str, str] = {}
    for stage, key in args["entries"]:
        reason = verify_entry(store / stage / key, stage, key)
        if reason:
            bad[f"{stage}/{key}"] = reason
        else:
            os.utime(store / stage / key / RECORD_FILE)  # last used: what prune goes by
    return {"bad": bad}


def _remove(store: Path, path: Path) -> None:
    """Move out of sight first (a rename is atomic), then delete at leisure."""
    trash = store / TRASH_DIR
    trash.mkdir(mode=0o755, exist_ok=True)
    aside = trash / uuid.uuid4().hex
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside) if aside.is_dir() else aside.unlink()


def drop(store: Path, args: dict[str, Any]) -> dict[str, Any]:
    for stage, key in args["entries"]:
        if stage not in RESERVED and "/" not in stage + key:
            _remove(store, store / stage / key)
            _origin_path(store, stage, key).unlink(missing_ok=True)
    return {"dropped": len(args["entries"])}


# --- list, prune, forget --------------------------------------------------------------------

def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _entries(store: Path) -> Iterator[dict[str, Any]]:
    for stage in sorted(p for p in store.iterdir() if p.is_dir() and p.name not in RESERVED):
        for entry in sorted(p for p in stage.iterdir() if p.is_dir()):
            record = entry / RECORD_FILE
            yield {"stage": stage.name, "key": entry.name, "bytes": _size(entry), "kind": "result",
                   "mtime": (record if record.exists() else entry).stat().st_mtime,
                   "origin": read_origin(store, stage.name, entry.name)}
    pool = store / POOL_DIR
    for file in sorted(pool.iterdir()) if pool.is_dir() else []:
        yield {"stage": POOL_DIR, "key": file.name, "bytes": file.stat().st_size, "kind": "pool",
               "mtime": file.stat().st_mtime, "origin": None}


def _leased(store: Path, live: set[str], grace: float, now: float) -> tuple[set[str], list[Path]]:
    """Entries ("stage/key") that running builds hold, and lease folders of ended builds.

    A build this keeper was not told about holds its leases until the grace period is
    over: it started after the host looked."""
    held: set[str] = set()
    ended: list[Path] = []
    leases = store / LEASES_DIR
    for build in sorted(leases.iterdir()) if leases.is_dir() else []:
        if build.name in live or now - build.stat().st_mtime < grace:
            held.update(lease.name.replace("-", "/", 1) for lease in build.iterdir())
        else:
            ended.append(build)
    return held, ended


def select(entries: list[dict[str, Any]], held: set[str], now: float, older_than: float | None,
           max_bytes: int | None) -> list[dict[str, Any]]:
    """What prune removes: entries unused for `older_than` seconds (all when null), then, while
    the store is larger than `max_bytes`, the least recently used of the rest. What a running
    build holds is never chosen, though it counts towards the size."""
    free = [e for e in entries if f"{e['stage']}/{e['key']}" not in held]
    doomed = [e for e in free if older_than is None or now - e["mtime"] > older_than]
    if max_bytes is None:
        return doomed
    left = sum(e["bytes"] for e in entries) - sum(e["bytes"] for e in doomed)
    chosen = {id(e) for e in doomed}
    for entry in sorted(free, key=lambda e: (e["mtime"], e["stage"], e["key"])):
        if left <= max_bytes:
            break
        if id(entry) not in chosen:
            doomed.append(entry)
            left -= entry["bytes"]
    return doomed


def prune(store: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Remove what `select` chooses, never an entry a running build holds: leases are read
    before and after the entries move out of sight, and what became leased in between is
    put back. Two prunes at once each remove what they moved aside; the other skips it."""
    now, live = time.time(), set(args["live"])
    held, _ = _leased(store, live, args["grace"], now)
    entries = list(_entries(store))
    doomed = select(entries, held, now, args["older_than"], args.get("max_bytes"))
    trash = store / TRASH_DIR / f"prune-{uuid.uuid4().hex[:8]}"
    trash.mkdir(parents=True, mode=0o755)
    moved = []
    for entry in doomed:
        aside = trash / f"{entry['stage']}--{entry['key']}"
        try:
            os.rename(store / entry["stage"] / entry["key"], aside)
            moved.append((entry, aside))
        except FileNotFoundError:
            continue
    held, _ = _leased(store, live, args["grace"], now)
    removed = []
    for entry, aside in moved:
        if f"{entry['stage']}/{entry['key']}" in held:
            os.rename(aside, store / entry["stage"] / entry["key"])
        else:
            removed.append(entry)
            if entry["kind"] == "result" and not (store / entry["stage"] / entry["key"]).exists():
                _origin_path(store, entry["stage"], entry["key"]).unlink(missing_ok=True)
    shutil.rmtree(trash)
    remaining = sum(e["bytes"] for e in entries) - sum(e["bytes"] for e in removed)
    return {"removed": removed, "remaining": remaining, **forget(store, args)}


def forget(store: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Leases, half-published entries and trash that ended builds left."""
    now, live = time.time(), set(args["live"])
    _, ended = _leased(store, live, args["grace"], now)
    for build in ended:
        shutil.rmtree(build, ignore_errors=True)
    stale = 0
    for folder in (store / INCOMING_DIR, store / TRASH_DIR):
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            build = path.name.split("-", 1)[0]
            if build not in live and now - path.stat().st_mtime > args["grace"]:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
                stale += 1
    return {"ended_builds": len(ended), "stale": stale + _forget_origins(store, now, args["grace"])}


def _forget_origins(store: Path, now: float, grace: float) -> int:
    """Origins whose entry is gone (an older keeper removed it without knowing of origins).
    One written within the grace period stays: its entry may be moving back (prune) or in."""
    folder = store / ORIGINS_DIR
    gone = 0
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        stage, _, key = path.name.removesuffix(".json").partition("-")
        if now - path.stat().st_mtime > grace and not (store / stage / key).is_dir():
            path.unlink(missing_ok=True)
            gone += 1
    return gone


def list_store(store: Path, args: dict[str, Any]) -> dict[str, Any]:
    return {"entries": list(_entries(store))}


COMMANDS = {"verify": verify, "drop": drop, "prune": prune, "forget": forget, "list": list_store}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: store_keeper COMMAND JSON", file=sys.stderr)
        return 2
    command = argv[0]
    os.umask(0o022)
    store = Path(STORE_MOUNT)
    try:
        args = json.loads(argv[1])
        if command == "publish":
            answer = publish(store, Path(WORK_MOUNT), args)
        elif command in COMMANDS:
            answer = COMMANDS[command](store, args)
        else:
            raise KeeperError(f"unknown command {command}")
    except (KeeperError, OSError, ValueError) as error:
        reason = os.strerror(error.errno).lower() if isinstance(error, OSError) and error.errno else str(error)
        print(f"store keeper: {command}: {reason}", file=sys.stderr, flush=True)
        return 1
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
