"""`cache ls` and `cache prune --max-size` as a person sees them: a header, aligned columns,
human sizes and ages, and where each entry came from. The listing is what the real keeper
lists from a store in tmp_path, read the way the host reads the keeper's answer."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from liveorch.orchestrator import store_keeper as keeper
from liveorch.orchestrator.cache import CacheEntry, EntryKind, Origin
from liveorch.orchestrator.cli import app
from liveorch.orchestrator.human import aligned, count, format_age, format_size, parse_size
from liveorch.orchestrator.summary import cache_lines
from liveorch.stages.contract import StageClaims
from liveorch.stages.contracts.resolve import SPEC as RESOLVE
from liveorch.stages.contracts.squashfs import SPEC as SQUASHFS

NOW = 1_800_000_000.0


@pytest.mark.parametrize(("size", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (177_940_070, "169.7 MiB"), (6 << 30, "6.0 GiB"),
    (3 << 40, "3.0 TiB"), (5 << 50, "5120.0 TiB"),
])
def test_sizes_read_in_binary_units(size: int, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "0 s"), (0.4, "0 s"), (59, "59 s"), (60, "1 min"), (3 * 60 + 59, "3 min"), (3599, "59 min"),
    (3600, "1 h"), (2 * 3600 + 1, "2 h"), (47 * 3600, "47 h"), (48 * 3600, "2 d"), (5 * 86400 + 7, "5 d"),
])
def test_ages_read_in_whole_units(seconds: float, text: str) -> None:
    assert format_age(seconds) == text


@pytest.mark.parametrize(("text", "size"), [
    ("5G", 5 << 30), ("500M", 500 << 20), ("500m", 500 << 20), ("1.5GiB", 3 << 29), ("2 GB", 2 << 30),
    ("2048", 2048), ("0", 0), ("10k", 10240), (" 1T ", 1 << 40),
])
def test_sizes_typed_by_people(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "G", "five", "-1G", "5X", "5 G B", "1e9"])
def test_sizes_that_are_not(text: str) -> None:
    with pytest.raises(ValueError, match="like 5G, 500M"):
        parse_size(text)


def test_columns_align_and_numbers_align_right() -> None:
    lines = aligned([["a", "size"], ["long name", "1.0 KiB"], ["b", "12 B"]], right=frozenset({1}))
    assert lines == ["a             size", "long name  1.0 KiB", "b             12 B"]


def _store(tmp_path: Path) -> Path:
    """Two squashfs results (one from a build with profiles, one published before origins
    were kept), a resolve result and its two pooled packages, with known last uses."""
    store = tmp_path / "store"
    store.mkdir()
    for spec, key, files, origin in [
        (SQUASHFS, "a" * 64, {"LiveOS/squashfs.img": b"x" * 3000}, {"description": "/d/config.xml",
                                                                     "profiles": ["efi", "debug"]}),
        (SQUASHFS, "b" * 64, {"LiveOS/squashfs.img": b"y" * 10}, None),
        (RESOLVE, "c" * 64, {"debs/a_1_amd64.deb": b"a" * 1024, "debs/b_1_amd64.deb": b"b" * 2048,
                             "lock.json": b"{}"}, {"description": "/other/config.xml", "profiles": []}),
    ]:
        work = tmp_path / f"work-{key[0]}"
        for name, data in files.items():
            (work / "out" / name).parent.mkdir(parents=True, exist_ok=True)
            (work / "out" / name).write_bytes(data)
        (work / "result.json").write_text(StageClaims({}, {}, 1.0).to_json())
        keeper.publish(store, work, {"stage": spec.name, "key": key, "build": f"build{key[0]}", "pooled": spec.pooled,
                                     "outputs": [{"name": o.name, "optional": o.optional} for o in spec.outputs],
                                     "origin": origin})
    return store


def _set_use(path: Path, seconds_ago: float) -> None:
    os.utime(path, (NOW - seconds_ago, NOW - seconds_ago))


def test_cache_ls_shows_a_header_origins_and_human_units(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _set_use(store / "squashfs" / ("a" * 64) / "record.json", 3 * 60)
    _set_use(store / "squashfs" / ("b" * 64) / "record.json", 5 * 86400)
    _set_use(store / "resolve" / ("c" * 64) / "record.json", 2 * 3600)
    for pooled in (store / "pool").iterdir():
        _set_use(pooled, 2 * 3600)
    listed: list[dict[str, Any]] = keeper.list_store(store, {})["entries"]
    entries = [CacheEntry.from_keeper(e) for e in listed]
    entries.append(CacheEntry("rootfs", "liveorch-work-buildd-rootfs", 0, NOW - 30, EntryKind.KEPT, "buildd"))
    lines = cache_lines(entries, "vol", NOW)
    assert lines[0].split() == ["stage", "key", "size", "last", "used", "build", "profiles", "description"]
    body = {line.split()[0] + line.split()[1][:1]: line for line in lines[1:-1]}
    size = {e["key"][0]: format_size(e["bytes"]).split() for e in listed if e["kind"] == "result"}
    assert body["squashfsa"].split()[1:] == ["a" * 12, *size["a"], "3", "min", "builda", "efi,debug",
                                             "/d/config.xml"]
    assert size["a"][1] == "KiB" and size["b"][1] == "B"
    assert body["squashfsb"].split()[1:] == ["b" * 12, *size["b"], "5", "d", "-", "-", "-"]
    assert body["resolvec"].split()[4:] == ["2", "h", "buildc", "-", "/other/config.xml"]
    assert body["rootfs("].split()[1:6] == ["(kept", "work)", "-", "30", "s"]
    assert body["rootfs("].endswith("volume liveorch-work-buildd-rootfs (`liveorch clean` removes it)")
    assert body["pool2"].split()[:5] == ["pool", "2", "packages", "3.0", "KiB"]
    assert lines[-1].startswith("3 results, 1 scratch volume, 2 packages: ") and lines[-1].endswith(" in volume vol")
    sizes = [line.index("B ") for line in lines[1:-1] if "B " in line]
    assert len(set(sizes)) == 1, "the size column is right-aligned: its units line up"
    order = [line.split()[0] for line in lines[1:-1]]
    assert order == ["resolve", "rootfs", "squashfs", "squashfs", "pool"]


def test_an_empty_cache_is_one_line() -> None:
    assert cache_lines([], "vol", NOW) == ["0 results, 0 packages: 0 B in volume vol"]


def test_a_malformed_origin_is_no_origin() -> None:
    assert Origin.from_keeper(["x"]) is None
    assert Origin.from_keeper({"build": 3, "description": "/d", "profiles": ["a", 1]}) == Origin(None, "/d", ("a",))


@pytest.mark.parametrize(("args", "message"), [
    (["--max-size", "lots"], "--max-size 'lots' is not a size"),
    (["--max-size", "5G", "--all"], "give --all or --max-size, not both"),
])
def test_prune_refuses_bad_sizes_before_touching_the_engine(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["cache", "prune", *args, "--engine-host", "tcp://127.0.0.1:9"])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_now_is_not_fixed_in_the_cli() -> None:
    """print_cache_entries ages entries against the present, not the tests' NOW."""
    entry = CacheEntry("squashfs", "d" * 64, 1, time.time() - 120, EntryKind.RESULT)
    assert "2 min" in cache_lines([entry], "vol", time.time())[1]


def test_counts_read_as_english() -> None:
    assert [count(n, "result") for n in (0, 1, 2)] == ["0 results", "1 result", "2 results"]
    assert count(1, "entry", "entries") == "1 entry" and count(3, "entry", "entries") == "3 entries"
