"""The store keeper's logic on a store and a scratch tree in tmp_path: what it publishes,
what it refuses, how it verifies, and what prune may remove (never a running build's)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from liveorch.orchestrator import store_keeper as keeper
from liveorch.stages.contract import RECORD_FILE, Record, StageClaims
from liveorch.stages.contracts.resolve import SPEC as RESOLVE
from liveorch.stages.contracts.squashfs import SPEC as SQUASHFS

KEY = "1" * 64


def outputs_of(spec: Any) -> list[dict[str, Any]]:
    return [{"name": o.name, "optional": o.optional} for o in spec.outputs]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "store").mkdir()
    return tmp_path / "store"


def scratch(tmp_path: Path, files: dict[str, bytes], facts: dict[str, Any] | None = None) -> Path:
    work = tmp_path / f"work-{len(list(tmp_path.iterdir()))}"
    (work / "out").mkdir(parents=True)
    for name, data in files.items():
        (work / "out" / name).parent.mkdir(parents=True, exist_ok=True)
        (work / "out" / name).write_bytes(data)
    (work / "result.json").write_text(StageClaims({"tar2sqfs": "1.2"}, facts or {}, 3.5).to_json())
    return work


def publish(store: Path, work: Path, spec: Any = SQUASHFS, key: str = KEY, build: str = "b1") -> dict[str, Any]:
    return keeper.publish(store, work, {"stage": spec.name, "key": key, "build": build, "pooled": spec.pooled,
                                        "outputs": outputs_of(spec)})


def test_publish_hashes_what_it_copies(store: Path, tmp_path: Path) -> None:
    answer = publish(store, scratch(tmp_path, {"LiveOS/squashfs.img": b"squash"}))
    assert answer["published"] is True
    entry = store / "squashfs" / KEY
    record = Record.from_json((entry / RECORD_FILE).read_text())
    assert record.outputs["LiveOS/squashfs.img"].size == 6
    assert record.tools == {"tar2sqfs": "1.2"}
    assert (entry / "LiveOS/squashfs.img").read_bytes() == b"squash"
    assert oct((entry / "LiveOS/squashfs.img").stat().st_mode & 0o777) == "0o644"
    assert not list((store / ".incoming").iterdir())
    assert keeper.verify_entry(entry, "squashfs", KEY) is None


def test_a_concurrent_publish_of_the_same_key_keeps_the_first(store: Path, tmp_path: Path) -> None:
    first = publish(store, scratch(tmp_path, {"LiveOS/squashfs.img": b"one"}))
    second = publish(store, scratch(tmp_path, {"LiveOS/squashfs.img": b"two"}), build="b2")
    assert first["published"] and not second["published"]
    assert second["record"] == first["record"]
    assert (store / "squashfs" / KEY / "LiveOS/squashfs.img").read_bytes() == b"one"


@pytest.mark.parametrize(("files", "message"), [
    ({"LiveOS/squashfs.img": b"x", "evil.sh": b"#!"}, "does not declare: evil.sh"),
    ({"other": b"x"}, "does not declare"),
    ({}, "did not write any of its declared outputs"),
    ({"LiveOS/squashfs.img": b"x", RECORD_FILE: b"{}"}, "does not declare"),
])
def test_undeclared_or_missing_outputs_are_refused(files: dict[str, bytes], message: str, store: Path,
                                                   tmp_path: Path) -> None:
    with pytest.raises(keeper.KeeperError, match=message):
        publish(store, scratch(tmp_path, files))
    assert not (store / "squashfs" / KEY).exists()
    assert not list((store / ".incoming").iterdir()), "a refused publish leaves nothing behind"


def test_symlinks_in_the_outputs_are_refused(store: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host file")
    work = scratch(tmp_path, {})
    (work / "out" / "LiveOS").mkdir()
    (work / "out" / "LiveOS" / "squashfs.img").symlink_to(secret)
    with pytest.raises(keeper.KeeperError, match="not a regular file"):
        publish(store, work)


def test_a_symlinked_out_directory_is_refused(store: Path, tmp_path: Path) -> None:
    work = scratch(tmp_path, {})
    os.rmdir(work / "out")
    (tmp_path / "elsewhere" / "LiveOS").mkdir(parents=True)
    (tmp_path / "elsewhere" / "LiveOS" / "squashfs.img").write_bytes(b"x")
    (work / "out").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(keeper.KeeperError, match="symlink"):
        publish(store, work)


def test_forged_claims_are_refused(store: Path, tmp_path: Path) -> None:
    work = scratch(tmp_path, {"LiveOS/squashfs.img": b"x"})
    (work / "result.json").write_text(json.dumps({"tools": {}, "facts": {}, "seconds": 1, "outputs": {}}))
    with pytest.raises(keeper.KeeperError, match="does not fit the contract"):
        publish(store, work)


def test_resolve_outputs_join_the_pool_as_copies(store: Path, tmp_path: Path) -> None:
    deb = b"!<arch>\n" + b"x" * 100
    work = scratch(tmp_path, {"debs/a_1_amd64.deb": deb, "lock.json": b"{}"})
    record = Record.from_json(json.dumps(publish(store, work, RESOLVE)["record"]))
    pooled = store / "pool" / f"{record.outputs['debs/a_1_amd64.deb'].sha256}.deb"
    assert pooled.read_bytes() == deb
    entry_file = store / "resolve" / KEY / "debs/a_1_amd64.deb"
    assert pooled.stat().st_ino != entry_file.stat().st_ino, "no hard links shared between entries"


@pytest.mark.parametrize("tamper", ["change", "remove", "add", "record"])
def test_verify_finds_tampering(tamper: str, store: Path, tmp_path: Path) -> None:
    publish(store, scratch(tmp_path, {"LiveOS/squashfs.img": b"squash"}))
    entry = store / "squashfs" / KEY
    image = entry / "LiveOS/squashfs.img"
    if tamper == "change":
        image.write_bytes(b"squosh")
    elif tamper == "remove":
        image.unlink()
    elif tamper == "add":
        (entry / "extra").write_bytes(b"")
    else:
        (entry / RECORD_FILE).write_text("{")
    answer = keeper.verify(store, {"entries": [["squashfs", KEY]]})
    assert list(answer["bad"]) == [f"squashfs/{KEY}"]
    keeper.drop(store, {"entries": [["squashfs", KEY]]})
    assert not entry.exists()


def _aged(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_prune_selection(store: Path, tmp_path: Path) -> None:
    """Old entries go, recent ones stay, and an old one a running build leased stays too;
    leases of ended builds go."""
    for key in ("a" * 64, "b" * 64, "c" * 64):
        publish(store, scratch(tmp_path, {"LiveOS/squashfs.img": key.encode()}), key=key)
    _aged(store / "squashfs" / ("a" * 64) / RECORD_FILE, 30 * 86400)
    _aged(store / "squashfs" / ("c" * 64) / RECORD_FILE, 30 * 86400)
    (store / "leases" / "running").mkdir(parents=True)
    (store / "leases" / "running" / f"squashfs-{'c' * 64}").write_bytes(b"")
    (store / "leases" / "ended").mkdir()
    (store / "leases" / "ended" / f"squashfs-{'b' * 64}").write_bytes(b"")
    _aged(store / "leases" / "ended", 7200)
    answer = keeper.prune(store, {"older_than": 14 * 86400, "live": ["running"], "grace": 600})
    assert [e["key"] for e in answer["removed"]] == ["a" * 64]
    assert sorted(p.name for p in (store / "squashfs").iterdir()) == ["b" * 64, "c" * 64]
    assert answer["ended_builds"] == 1 and not (store / "leases" / "ended").exists()


def test_prune_all_spares_a_build_that_just_started(store: Path, tmp_path: Path) -> None:
    """A lease younger than the grace period counts even when the host did not name its build."""
    publish(store, scratch(tmp_path, {"LiveOS/squashfs.img": b"x"}))
    (store / "leases" / "new-build").mkdir(parents=True)
    (store / "leases" / "new-build" / f"squashfs-{KEY}").write_bytes(b"")
    answer = keeper.prune(store, {"older_than": None, "live": [], "grace": 600})
    assert answer["removed"] == [] and (store / "squashfs" / KEY).is_dir()
    _aged(store / "leases" / "new-build", 7200)
    answer = keeper.prune(store, {"older_than": None, "live": [], "grace": 600})
    assert [e["key"] for e in answer["removed"]] == [KEY]


def test_list_names_results_and_pool(store: Path, tmp_path: Path) -> None:
    publish(store, scratch(tmp_path, {"debs/a_1_amd64.deb": b"deb", "lock.json": b"{}"}), RESOLVE)
    kinds = sorted((e["stage"], e["kind"]) for e in keeper.list_store(store, {})["entries"])
    assert kinds == [("pool", "pool"), ("resolve", "result")]


ORIGIN = {"description": "/home/me/live/config.xml", "profiles": ["efi"]}


def test_an_origin_is_kept_beside_the_entry_never_in_it(store: Path, tmp_path: Path) -> None:
    """Provenance must not touch a stage's bytes: the entry and its record are the same with
    or without it, and the same entry reached from another description keeps its first origin."""
    files = {"LiveOS/squashfs.img": b"squash"}
    (tmp_path / "plain").mkdir()
    plain = publish(tmp_path / "plain", scratch(tmp_path, files))
    traced = keeper.publish(store, scratch(tmp_path, files), {
        "stage": "squashfs", "key": KEY, "build": "b1", "pooled": None, "outputs": outputs_of(SQUASHFS),
        "origin": ORIGIN})
    assert traced["record"] == plain["record"]
    entry = store / "squashfs" / KEY
    assert sorted(p.name for p in entry.iterdir()) == sorted(p.name for p in (tmp_path / "plain/squashfs" / KEY)
                                                             .iterdir())
    assert keeper.verify(store, {"entries": [["squashfs", KEY]]})["bad"] == {}
    assert keeper.read_origin(store, "squashfs", KEY) == {"build": "b1", **ORIGIN}
    keeper.publish(store, scratch(tmp_path, files), {
        "stage": "squashfs", "key": KEY, "build": "b2", "pooled": None, "outputs": outputs_of(SQUASHFS),
        "origin": {"description": "/elsewhere/config.xml", "profiles": []}})
    assert keeper.read_origin(store, "squashfs", KEY) == {"build": "b1", **ORIGIN}
    listed = keeper.list_store(store, {})["entries"]
    assert [e["origin"] for e in listed] == [{"build": "b1", **ORIGIN}]
    assert [e["origin"] for e in keeper.list_store(tmp_path / "plain", {})["entries"]] == [None]


def test_a_malformed_origin_is_cut_to_what_it_may_hold(store: Path) -> None:
    keeper.write_origin(store, "squashfs", KEY, "b1", {"description": "d" * 5000, "profiles": ["a", 3, None],
                                                       "password": "secret"})
    assert keeper.read_origin(store, "squashfs", KEY) == {"build": "b1", "description": "d" * 4096,
                                                          "profiles": ["a"]}
    keeper.write_origin(store, "squashfs", "2" * 64, "b1", "not a dict")
    assert keeper.read_origin(store, "squashfs", "2" * 64) is None


def _entry_sizes(store: Path) -> dict[str, int]:
    return {e["key"][:1]: e["bytes"] for e in keeper.list_store(store, {})["entries"]}


def test_prune_max_size_removes_the_least_recently_used_first(store: Path, tmp_path: Path) -> None:
    """Last used 4 h (d), 3 h (a), 2 h (b) and 1 h (c) ago; b is then used (a cache hit), d is
    held by a running build. Fitting in b and d removes a and c: not b (used since), not d (held)."""
    for age, key in enumerate("cbad"):
        publish(store, scratch(tmp_path, {"LiveOS/squashfs.img": key.encode() * 1000}), key=key * 64)
        _aged(store / "squashfs" / (key * 64) / RECORD_FILE, 3600 * (age + 1))
    assert keeper.verify(store, {"entries": [["squashfs", "b" * 64]]})["bad"] == {}
    (store / "leases" / "running").mkdir(parents=True)
    (store / "leases" / "running" / f"squashfs-{'d' * 64}").write_bytes(b"")
    sizes = _entry_sizes(store)
    answer = keeper.prune(store, {"older_than": 14 * 86400, "max_bytes": sizes["b"] + sizes["d"], "live": ["running"],
                                  "grace": 600})
    assert [e["key"][:1] for e in answer["removed"]] == ["a", "c"]
    assert sorted(p.name[:1] for p in (store / "squashfs").iterdir()) == ["b", "d"]
    assert answer["remaining"] == sizes["b"] + sizes["d"]
    assert keeper.read_origin(store, "squashfs", "a" * 64) is None


def test_prune_max_size_stops_once_the_store_fits(store: Path, tmp_path: Path) -> None:
    for age, key in enumerate("cba"):
        publish(store, scratch(tmp_path, {"LiveOS/squashfs.img": key.encode() * 1000}), key=key * 64)
        _aged(store / "squashfs" / (key * 64) / RECORD_FILE, 3600 * (age + 1))
    total = sum(_entry_sizes(store).values())
    answer = keeper.prune(store, {"older_than": 14 * 86400, "max_bytes": total - 1, "live": [], "grace": 600})
    assert [e["key"][:1] for e in answer["removed"]] == ["a"]
    assert answer["remaining"] == sum(_entry_sizes(store).values()) < total
    answer = keeper.prune(store, {"older_than": 14 * 86400, "max_bytes": total, "live": [], "grace": 600})
    assert answer["removed"] == []


def test_prune_max_size_cannot_remove_what_running_builds_hold(store: Path, tmp_path: Path) -> None:
    publish(store, scratch(tmp_path, {"LiveOS/squashfs.img": b"x"}))
    (store / "leases" / "running").mkdir(parents=True)
    (store / "leases" / "running" / f"squashfs-{KEY}").write_bytes(b"")
    answer = keeper.prune(store, {"older_than": 14 * 86400, "max_bytes": 0, "live": ["running"], "grace": 600})
    assert answer["removed"] == [] and answer["remaining"] == _entry_sizes(store)["1"] > 0


def test_reuse_counts_as_use(store: Path, tmp_path: Path) -> None:
    """A concurrent build's publish of a key that is there, and a resolve that pools a .deb
    already pooled, both use what is there: its last use moves, so LRU keeps it."""
    deb = {"debs/a_1_amd64.deb": b"!<arch>\n", "lock.json": b"{}"}
    publish(store, scratch(tmp_path, deb), RESOLVE)
    record = store / "resolve" / KEY / RECORD_FILE
    (pooled,) = (store / "pool").iterdir()
    _aged(record, 86400)
    _aged(pooled, 86400)
    assert not publish(store, scratch(tmp_path, deb), RESOLVE, build="b2")["published"]
    publish(store, scratch(tmp_path, {**deb, "lock.json": b"{ }"}), RESOLVE, key="2" * 64)
    assert time.time() - record.stat().st_mtime < 60
    assert time.time() - pooled.stat().st_mtime < 60


def test_origins_go_with_their_entries(store: Path, tmp_path: Path) -> None:
    """drop and prune take an entry's origin with it; one an older keeper left behind goes
    once the grace period is over."""
    for key in ("a" * 64, "b" * 64, "c" * 64):
        keeper.publish(store, scratch(tmp_path, {"LiveOS/squashfs.img": b"x"}), {
            "stage": "squashfs", "key": key, "build": "b1", "pooled": None, "outputs": outputs_of(SQUASHFS),
            "origin": ORIGIN})
    keeper.drop(store, {"entries": [["squashfs", "a" * 64]]})
    assert keeper.read_origin(store, "squashfs", "a" * 64) is None
    os.rename(store / "squashfs" / ("b" * 64), store / "elsewhere")  # what an older keeper's drop did
    keeper.forget(store, {"live": [], "grace": 600})
    assert keeper.read_origin(store, "squashfs", "b" * 64) is not None, "within the grace period it stays"
    _aged(store / "origins" / f"squashfs-{'b' * 64}.json", 7200)
    assert keeper.forget(store, {"live": [], "grace": 600})["stale"] == 1
    assert keeper.read_origin(store, "squashfs", "b" * 64) is None
    assert keeper.read_origin(store, "squashfs", "c" * 64) is not None
    keeper.prune(store, {"older_than": None, "live": [], "grace": 600})
    assert not list((store / "origins").iterdir())
