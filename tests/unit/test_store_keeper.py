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
