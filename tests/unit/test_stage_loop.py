"""The stage loop and its keys, with an in-memory store and a runner that makes outputs
from the request: which stages run, which are cached, what a failed verification does."""

from __future__ import annotations

import io
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.errors import Interrupted, StageFailed
from liveorch.orchestrator.keys import stage_key
from liveorch.orchestrator.pipeline import Entry, LoopSettings, StageLoop, thread_budgets
from liveorch.orchestrator.plan import make_plan
from liveorch.orchestrator.progress import PlainProgress
from liveorch.orchestrator.stage_specs import stage_names
from liveorch.stages.contract import Artifact, Record, StageRequest, StageSpec, canonical_json, encode, sha256_text
from liveorch.stages.contracts.squashfs import Compression

EPOCH = 1_700_000_000
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookworm-live" / "config.xml"


class MemoryStore:
    def __init__(self) -> None:
        self.entries: dict[Entry, Record] = {}
        self.leases: list[Entry] = []
        self.verified: list[list[Entry]] = []
        self.tampered: set[Entry] = set()
        self.shared: dict[Entry, Record] = {}
        self.fetched: list[Entry] = []
        self.broken: set[Entry] = set()
        self.pushing = False

    def lease(self, stage: str, key: str) -> None:
        self.leases.append((stage, key))

    def record(self, stage: str, key: str) -> Record | None:
        return self.entries.get((stage, key))

    def verify(self, entries: list[Entry]) -> dict[Entry, str]:
        self.verified.append(entries)
        return {e: "tampered" for e in entries if e in self.tampered}

    def drop(self, entries: list[Entry]) -> None:
        for entry in entries:
            del self.entries[entry]
            self.tampered.discard(entry)

    def offer(self, stage: str, key: str) -> Record | None:
        """A shared store behind this one: its record, before any file comes in."""
        return self.shared.get((stage, key))

    def pull(self, stage: str, key: str, record: Record) -> Record | None:
        """What it holds comes in as a verified entry; a `broken` one is refused."""
        self.fetched.append((stage, key))
        if (stage, key) in self.broken:
            return None
        self.entries[(stage, key)] = record
        return record

    def share(self, stage: str, key: str, record: Record) -> None:
        if self.pushing:
            self.shared.setdefault((stage, key), record)


class ContentRunner:
    """Outputs are a function of the options and the inputs (a pure stage), except where a
    test says a stage's code makes other bytes."""

    def __init__(self, store: MemoryStore) -> None:
        self.store, self.ran, self.variant = store, [], {}

    def __call__(self, spec: StageSpec, request: StageRequest) -> tuple[Record, dict[str, object] | None, bool]:
        self.ran.append(spec.name)
        inputs = {name: self.store.entries[(name, key)].digest() for name, key in request.inputs.items()}
        content = sha256_text(canonical_json([encode(request.options), inputs, self.variant.get(spec.name)]))
        facts: dict[str, Any] = {"source_date_epoch": EPOCH} if spec.name == "resolve" else {}
        record = Record(spec.name, request.key, {"out": Artifact(1, content)}, {}, facts, 1.0)
        self.store.entries[(spec.name, request.key)] = record
        return record, None, True


@pytest.fixture(scope="module")
def options() -> dict[str, Any]:
    return make_plan(parse_description(EXAMPLE)).options


def loop(options: dict[str, Any], store: MemoryStore, runner: ContentRunner, code: dict[str, str] | None = None,
         **settings: Any) -> StageLoop:
    return StageLoop(options, lambda stage: (code or {}).get(stage, "code-" + stage), store, runner,
                     PlainProgress(write=lambda _: None), io.StringIO(), LoopSettings(epoch=0, **settings))


def test_a_cold_build_runs_every_stage_in_order(options: dict[str, Any]) -> None:
    store = MemoryStore()
    runner = ContentRunner(store)
    reports = loop(options, store, runner).run()
    assert runner.ran == list(stage_names())
    assert not any(r.cached for r in reports.values())
    assert set(store.leases) >= {(s, r.key) for s, r in reports.items()}, "every entry used is leased"


def test_a_second_build_is_all_cached_and_verified_in_one_go(options: dict[str, Any]) -> None:
    store = MemoryStore()
    first = loop(options, store, ContentRunner(store)).run()
    runner = ContentRunner(store)
    second = loop(options, store, runner).run()
    assert runner.ran == [] and all(r.cached for r in second.values())
    assert store.verified[-1] == [(s, first[s].key) for s in stage_names()]


def test_a_tampered_entry_is_dropped_and_rebuilt(options: dict[str, Any]) -> None:
    store = MemoryStore()
    first = loop(options, store, ContentRunner(store)).run()
    store.tampered.add(("squashfs", first["squashfs"].key))
    runner = ContentRunner(store)
    second = loop(options, store, runner).run()
    assert runner.ran == ["squashfs"], "the same bytes again: later stages stay cached"
    assert second["checksum"].key == first["checksum"].key


def test_an_iso_option_reruns_iso_and_checksum_only(options: dict[str, Any]) -> None:
    store = MemoryStore()
    loop(options, store, ContentRunner(store)).run()
    changed = {**options, "iso": replace(options["iso"], publisher="someone else")}
    runner = ContentRunner(store)
    loop(changed, store, runner).run()
    assert runner.ran == ["iso", "checksum"]


def test_code_scoped_keys(options: dict[str, Any]) -> None:
    """New code for one stage reruns it; later stages rerun only when its bytes change."""
    store = MemoryStore()
    loop(options, store, ContentRunner(store)).run()
    runner = ContentRunner(store)
    loop(options, store, runner, code={"iso": "edited"}).run()
    assert runner.ran == ["iso"], "a comment-only edit: same ISO bytes, checksum stays cached"
    runner = ContentRunner(store)
    runner.variant["squashfs"] = "faster compressor code"
    loop(options, store, runner, code={"squashfs": "edited"}).run()
    assert runner.ran == ["squashfs", "iso", "checksum"]


def test_no_cache_and_update_lock(options: dict[str, Any]) -> None:
    store = MemoryStore()
    loop(options, store, ContentRunner(store)).run()
    runner = ContentRunner(store)
    loop(options, store, runner, no_cache=True).run()
    assert runner.ran == list(stage_names())
    runner = ContentRunner(store)
    loop(options, store, runner, update_lock=True).run()
    assert runner.ran == ["resolve"], "a fresh resolution with the same result reuses the rest"


def test_until_stops_after_that_stage(options: dict[str, Any]) -> None:
    store = MemoryStore()
    runner = ContentRunner(store)
    assert list(loop(options, store, runner).run(until="resolve")) == ["resolve"]


def test_requests_carry_input_keys_and_the_resolved_epoch(options: dict[str, Any]) -> None:
    store = MemoryStore()
    seen: list[StageRequest] = []
    runner = ContentRunner(store)

    def recording(spec: StageSpec, request: StageRequest) -> tuple[Record, dict[str, object] | None, bool]:
        seen.append(request)
        return runner(spec, request)

    reports = StageLoop(options, lambda s: "c", store, recording, PlainProgress(write=lambda _: None),
                        io.StringIO(), LoopSettings(epoch=0)).run()
    by_stage = {r.stage: r for r in seen}
    assert by_stage["resolve"].source_date_epoch == 0 and by_stage["iso"].source_date_epoch == EPOCH
    assert by_stage["iso"].inputs == {"squashfs": reports["squashfs"].key, "initrd": reports["initrd"].key}


def test_stage_key_covers_code_options_epoch_and_inputs(options: dict[str, Any]) -> None:
    record = Record("rootfs", "k", {"root.tar": Artifact(1, "a" * 64)}, {}, {}, 1.0)
    base = stage_key("squashfs", "code", EPOCH, options["squashfs"], {"rootfs": record})
    other_record = replace(record, outputs={"root.tar": Artifact(1, "b" * 64)})
    assert stage_key("squashfs", "code", EPOCH, options["squashfs"], {"rootfs": record}) == base
    assert stage_key("squashfs", "code2", EPOCH, options["squashfs"], {"rootfs": record}) != base
    assert stage_key("squashfs", "code", EPOCH + 1, options["squashfs"], {"rootfs": record}) != base
    assert stage_key("squashfs", "code", EPOCH, options["squashfs"], {"rootfs": other_record}) != base
    assert stage_key("squashfs", "code", EPOCH, replace(options["squashfs"], compression=Compression.LZ4),
                     {"rootfs": record}) != base
    timing_only = replace(record, seconds=99.0, tools={"x": "1"})
    assert stage_key("squashfs", "code", EPOCH, options["squashfs"], {"rootfs": timing_only}) == base


def test_a_shared_store_fills_an_empty_local_one(options: dict[str, Any]) -> None:
    """A build that pushed, then a build on an empty local store: every entry comes from the
    shared store and no stage runs."""
    first_host = MemoryStore()
    first_host.pushing = True
    first = loop(options, first_host, ContentRunner(first_host)).run()
    assert set(first_host.shared) == {(s, r.key) for s, r in first.items()}
    second_host = MemoryStore()
    second_host.shared = first_host.shared
    runner = ContentRunner(second_host)
    second = loop(options, second_host, runner).run()
    assert runner.ran == [] and all(r.cached for r in second.values())
    assert sorted(second_host.fetched) == sorted((s, first[s].key) for s in stage_names())
    assert second["checksum"].record == first["checksum"].record


def _pushed_build(options: dict[str, Any]) -> tuple[dict[str, Any], MemoryStore]:
    """A build on another host that pushed every entry: its reports and its shared store."""
    first_host = MemoryStore()
    first_host.pushing = True
    return loop(options, first_host, ContentRunner(first_host)).run(), first_host


def test_the_iso_stage_runs_while_the_root_still_streams_in(options: dict[str, Any]) -> None:
    """The registry has everything up to initrd; iso's options changed. iso needs squashfs
    and initrd, not the root: it runs while rootfs's pull is still under way (a loop that
    pulled first and ran after would wait at the gate until it times out)."""
    first, first_host = _pushed_build(options)
    iso_ran = threading.Event()

    class SlowRoot(MemoryStore):
        def pull(self, stage: str, key: str, record: Record) -> Record | None:
            if stage == "rootfs" and not iso_ran.wait(timeout=10):
                raise AssertionError("the iso stage did not run while the root was being pulled")
            return super().pull(stage, key, record)

    host = SlowRoot()
    host.shared = {entry: record for entry, record in first_host.shared.items() if entry[0] not in ("iso", "checksum")}

    class Runner(ContentRunner):
        def __call__(self, spec: StageSpec, request: StageRequest) -> tuple[Record, dict[str, object] | None, bool]:
            if spec.name == "iso":
                iso_ran.set()
            return super().__call__(spec, request)

    runner = Runner(host)
    changed = {**options, "iso": replace(options["iso"], publisher="someone else")}
    reports = StageLoop(changed, lambda stage: "code-" + stage, host, runner, PlainProgress(write=lambda _: None),
                        io.StringIO(), LoopSettings(epoch=0), cancel=lambda stage: None).run()
    assert runner.ran == ["iso", "checksum"]
    assert {s: reports[s].key for s in ("resolve", "rootfs", "squashfs", "initrd")} == \
        {s: first[s].key for s in ("resolve", "rootfs", "squashfs", "initrd")}
    assert reports["rootfs"].finished > reports["iso"].started, "the root's pull ended after iso began"


@pytest.mark.parametrize("reproducible", [True, False], ids=["same-bytes", "other-bytes"])
def test_a_refused_pull_runs_its_stage_and_keeps_only_what_still_chains(options: dict[str, Any],
                                                                        reproducible: bool) -> None:
    """The registry's root is bad: rootfs runs here. With the same bytes, the entries pulled
    beside it stay in use; with other bytes, everything after it runs on the new root."""
    first, first_host = _pushed_build(options)
    host = MemoryStore()
    host.shared = first_host.shared
    host.broken = {("rootfs", first["rootfs"].key)}
    runner = ContentRunner(host)
    if not reproducible:
        runner.variant["rootfs"] = "a different root"
    reports = StageLoop(options, lambda stage: "code-" + stage, host, runner, PlainProgress(write=lambda _: None),
                        io.StringIO(), LoopSettings(epoch=0), cancel=lambda stage: None).run()
    if reproducible:
        assert runner.ran == ["rootfs"]
        assert {s: r.key for s, r in reports.items()} == {s: r.key for s, r in first.items()}
    else:
        assert runner.ran[0] == "rootfs" and sorted(runner.ran[1:3]) == ["initrd", "squashfs"]
        assert runner.ran[3:] == ["iso", "checksum"]
        assert reports["squashfs"].key != first["squashfs"].key
    assert ("rootfs", first["rootfs"].key) in host.fetched
    assert host.fetched.count(("rootfs", first["rootfs"].key)) == 1, "a refused pull is not tried again"


# --- stages whose inputs are ready together run together -----------------------------------

class GatedRunner(ContentRunner):
    """squashfs and initrd meet at a barrier: a loop that ran them one after the other would
    time out there. `fail` makes one stage raise; `cancelled` records what the loop stopped."""

    def __init__(self, store: MemoryStore, fail: str | None = None, interrupt: bool = False) -> None:
        super().__init__(store)
        self.barrier = threading.Barrier(2, timeout=10)
        self.fail, self.interrupt = fail, interrupt
        self.cancelled: list[str] = []
        self.stopped = threading.Event()

    def __call__(self, spec: StageSpec, request: StageRequest) -> tuple[Record, dict[str, object] | None, bool]:
        if spec.name in ("squashfs", "initrd"):
            self.barrier.wait()
            if self.interrupt and spec.name == "initrd":
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            if spec.name == self.fail:
                raise StageFailed(f"the {spec.name} stage failed")
            if self.fail or self.interrupt:
                # a long stage: it ends only when the loop cancels it
                if not self.stopped.wait(timeout=10):
                    raise AssertionError(f"{spec.name} was never cancelled")
                raise StageFailed(f"{spec.name}: killed")
        return super().__call__(spec, request)

    def cancel(self, stage: str) -> None:
        self.cancelled.append(stage)
        self.stopped.set()


def gated_loop(options: dict[str, Any], store: MemoryStore, runner: GatedRunner, cpus: int = 1) -> StageLoop:
    return StageLoop(options, lambda stage: "code-" + stage, store, runner, PlainProgress(write=lambda _: None),
                     io.StringIO(), LoopSettings(epoch=0, cpus=cpus), cancel=runner.cancel)


def test_squashfs_and_initrd_run_at_the_same_time(options: dict[str, Any]) -> None:
    store = MemoryStore()
    runner = GatedRunner(store)
    reports = gated_loop(options, store, runner).run()
    assert set(runner.ran) == set(stage_names()) and runner.ran[-2:] == ["iso", "checksum"]
    assert list(reports) == list(stage_names()), "reports stay in running order"
    assert runner.cancelled == []


@pytest.mark.parametrize(("cpus", "squashfs", "initrd"), [(1, 1, 1), (2, 2, 1), (16, 16, 3)])
def test_stages_side_by_side_share_the_cores(options: dict[str, Any], cpus: int, squashfs: int, initrd: int) -> None:
    """squashfs, the longer of the two, gets every core; initrd its weight's share; a stage
    that runs alone gets them all."""
    store = MemoryStore()
    threads: dict[str, int] = {}

    class Recording(GatedRunner):
        def __call__(self, spec: StageSpec, request: StageRequest) -> tuple[Record, dict[str, object] | None, bool]:
            threads[spec.name] = request.threads
            return super().__call__(spec, request)

    gated_loop(options, store, Recording(store), cpus=cpus).run()
    assert threads == {**dict.fromkeys(stage_names(), cpus), "squashfs": squashfs, "initrd": initrd}


def test_thread_budgets_follow_the_contracts_weights() -> None:
    assert thread_budgets([], 8) == {}
    assert thread_budgets(["initrd"], 8) == {"initrd": 8}
    assert thread_budgets(["initrd", "squashfs"], 8) == {"squashfs": 8, "initrd": 1}
    assert thread_budgets(["iso", "checksum"], 4) == {"iso": 4, "checksum": 2}, "equal weights: the first gets all"


def test_a_failing_branch_cancels_the_other_and_reports_its_own_error(options: dict[str, Any]) -> None:
    store = MemoryStore()
    runner = GatedRunner(store, fail="initrd")
    with pytest.raises(StageFailed, match="the initrd stage failed"):
        gated_loop(options, store, runner).run()
    assert runner.cancelled == ["squashfs"]
    assert "iso" not in runner.ran


def test_ctrl_c_during_parallel_stages_cancels_both(options: dict[str, Any]) -> None:
    store = MemoryStore()
    runner = GatedRunner(store, interrupt=True)
    with pytest.raises(Interrupted, match="squashfs and initrd"):
        gated_loop(options, store, runner).run()
    assert sorted(runner.cancelled) == ["initrd", "squashfs"]


def test_stage_times_are_offsets_from_the_build_start(options: dict[str, Any]) -> None:
    """For report.html's timeline: stages side by side have overlapping spans, a stage starts
    after its inputs ended, and a cached stage gets a span too; the keys do not depend on them."""
    store = MemoryStore()
    origin = time.monotonic() - 100
    reports = StageLoop(options, lambda stage: "code-" + stage, store, GatedRunner(store),
                        PlainProgress(write=lambda _: None), io.StringIO(),
                        LoopSettings(epoch=0, origin=origin), cancel=lambda stage: None).run()
    assert reports["resolve"].started >= 100
    for report in reports.values():
        assert report.started <= report.finished
    assert reports["resolve"].finished <= reports["rootfs"].started
    squashfs, initrd = reports["squashfs"], reports["initrd"]
    assert squashfs.started < initrd.finished and initrd.started < squashfs.finished
    again = loop(options, store, ContentRunner(store)).run()
    assert all(r.cached and 0 <= r.started <= r.finished for r in again.values())
    assert {s: r.key for s, r in again.items()} == {s: r.key for s, r in reports.items()}
