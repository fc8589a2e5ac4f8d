"""The stage loop: each stage's key, a verified cache hit or a run, in running order.

Before anything runs, the loop looks up every stage whose inputs are already known to be
cached, leases those entries (so `cache prune` leaves them alone) and has the store keeper
hash them all in one go; an entry that no longer matches its record is dropped with a note
and its stage runs again. A stage whose key is known only once an earlier stage has run
(its inputs were rebuilt, with the same bytes or not) is looked up and verified then.

Stages run as soon as their inputs are there: stages whose inputs are ready together
(squashfs and initrd, which both need only the root) run at the same time. When one of
them fails, or Ctrl-C comes, the others are cancelled (their containers stopped and
removed) before the error is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from liveorch.orchestrator.errors import Interrupted, LiveorchError
from liveorch.orchestrator.keys import stage_key
from liveorch.orchestrator.progress import Progress
from liveorch.orchestrator.stage_specs import spec_of, stage_names
from liveorch.stages.contract import Record, StageRequest, StageSpec

Entry = tuple[str, str]  # (stage, key)


class StoreView(Protocol):
    """The local store, and a shared one behind it: `fetch` pulls an entry the local store
    lacks (None when the shared one has none either); `share` offers an entry to it."""

    def lease(self, stage: str, key: str) -> None: ...
    def record(self, stage: str, key: str) -> Record | None: ...
    def verify(self, entries: list[Entry]) -> dict[Entry, str]: ...
    def drop(self, entries: list[Entry]) -> None: ...
    def fetch(self, stage: str, key: str) -> Record | None: ...
    def share(self, stage: str, key: str, record: Record) -> None: ...


class Runner(Protocol):
    """Runs a stage and publishes its outputs: its record, what its container was given, and
    whether this run's outputs were published (False: a concurrent build published first)."""

    def __call__(self, spec: StageSpec, request: StageRequest) -> tuple[Record, dict[str, object] | None, bool]: ...


@dataclass
class StageReport:
    stage: str
    key: str
    cached: bool
    seconds: float
    record: Record
    container: dict[str, object] | None = None  # what the engine gave a container that ran
    published: bool = False  # this run's outputs became the entry (not a concurrent build's)
    # Seconds since the build started (LoopSettings.origin) when the stage started and ended, for
    # report.html's timeline: report.json only, never a key or a stage's input.
    started: float = 0.0
    finished: float = 0.0


@dataclass(frozen=True)
class LoopSettings:
    """epoch: the build's SOURCE_DATE_EPOCH when known (a lock or --source-date-epoch); 0
    lets resolve derive it from the newest package."""

    epoch: int
    no_cache: bool = False
    update_lock: bool = False
    cpus: int = 1  # the engine's cores, shared out as thread budgets (thread_budgets)
    origin: float = field(default_factory=time.monotonic)  # the build's start, time.monotonic()


def thread_budgets(stages: list[str], cpus: int) -> dict[str, int]:
    """Each stage's threads when `stages` start together: the heaviest (by its contract's
    cpu_weight) gets every core, since it is the one the build waits for and keeps running
    once the others finish; each other stage gets its weight's share, at least one. On two
    cores squashfs (weight 4) gets 2 and initrd 1; on sixteen, 16 and 3."""
    if not stages:
        return {}
    weights = {stage: spec_of(stage).cpu_weight for stage in stages}
    heaviest = max(stages, key=lambda stage: weights[stage])
    total = sum(weights.values())
    return {stage: cpus if stage == heaviest else max(1, cpus * weights[stage] // total) for stage in stages}


def _epoch_of(record: Record) -> int:
    value = record.facts.get("source_date_epoch")
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise LiveorchError(f"the resolve stage's record has no usable SOURCE_DATE_EPOCH ({value!r})")
    return value


def _wait_for_first_error(futures: dict[Future[StageReport], str]) -> set[Future[StageReport]]:
    """Waits in short steps: a Ctrl-C may reach any thread, and the main thread acts on it
    only between steps, never while blocked in one long wait."""
    while True:
        done, running = wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
        if not running or any(future.exception() is not None for future in done):
            return done


class StageLoop:
    """`cancel(stage)` stops a stage that is running in another thread (its runner then
    raises); without it, stages run one at a time."""

    def __init__(self, options: dict[str, Any], code: Callable[[str], str], store: StoreView, runner: Runner,
                 progress: Progress, log: IO[str], settings: LoopSettings,
                 cancel: Callable[[str], None] | None = None) -> None:
        self.options, self.code, self.store, self.runner = options, code, store, runner
        self.progress, self.log, self.settings, self.cancel = progress, log, settings, cancel

    def key(self, stage: str, epoch: int, records: dict[str, Record]) -> str:
        inputs = {name: records[name] for name in spec_of(stage).inputs}
        return stage_key(stage, self.code(stage), epoch, self.options[stage], inputs)

    def forced(self, stage: str) -> bool:
        return self.settings.no_cache or (stage == "resolve" and self.settings.update_lock)

    def _verify(self, found: dict[Entry, Record]) -> dict[Entry, Record]:
        """The entries whose files still hash to their records; the others are dropped."""
        bad = self.store.verify(list(found)) if found else {}
        for (stage, key), reason in sorted(bad.items()):
            self.progress.note(f"note: the cached {stage} result {key[:12]} failed verification ({reason}): "
                               "dropped, the stage runs again")
        self.store.drop(list(bad))
        return {entry: record for entry, record in found.items() if entry not in bad}

    def verified_hits(self, stages: tuple[str, ...]) -> dict[Entry, Record]:
        """The cached entries this build can use, each checked against its record; what
        only the shared store has is pulled (and checked on its way in) as the chain goes."""
        found: dict[Entry, Record] = {}
        pulled: dict[Entry, Record] = {}
        records: dict[str, Record] = {}
        epoch = self.settings.epoch
        for stage in stages:
            if self.forced(stage) or any(name not in records for name in spec_of(stage).inputs):
                continue
            key = self.key(stage, epoch, records)
            self.store.lease(stage, key)
            record = self.store.record(stage, key)
            if record is None:
                record = self.store.fetch(stage, key)
                if record is None:
                    continue
                pulled[(stage, key)] = record
            else:
                found[(stage, key)] = record
            records[stage] = record
            if stage == "resolve":
                epoch = _epoch_of(record)
        return {**self._verify(found), **pulled}

    def run(self, until: str | None = None) -> dict[str, StageReport]:
        names = stage_names()
        stages = names[: names.index(until) + 1] if until else names
        hits = self.verified_hits(stages)
        reports: dict[str, StageReport] = {}
        epoch = self.settings.epoch
        pending = list(stages)
        while pending:
            ready = [stage for stage in pending if all(name in reports for name in spec_of(stage).inputs)]
            records = {name: report.record for name, report in reports.items()}
            keys = {stage: self.key(stage, epoch, records) for stage in ready}
            cached = {stage: self._cached(stage, keys[stage], hits) for stage in ready}
            reports |= {stage: report for stage, report in cached.items() if report is not None}
            reports |= self._run_together([stage for stage in ready if cached[stage] is None], keys, epoch, reports)
            pending = [stage for stage in pending if stage not in ready]
            if "resolve" in ready:
                epoch = _epoch_of(reports["resolve"].record)
        return {stage: reports[stage] for stage in stages}

    def _run_together(self, stages: list[str], keys: dict[str, str], epoch: int,
                      reports: dict[str, StageReport]) -> dict[str, StageReport]:
        """Runs stages whose inputs are all there, at the same time when it can cancel them."""
        if len(stages) < 2 or self.cancel is None:
            return {stage: self._share(self._run(stage, keys[stage], epoch, reports, self.settings.cpus))
                    for stage in stages}
        threads = thread_budgets(stages, self.settings.cpus)
        futures: dict[Future[StageReport], str] = {}
        with ThreadPoolExecutor(max_workers=len(stages), thread_name_prefix="stage") as pool:
            try:
                for stage in stages:
                    futures[pool.submit(self._run, stage, keys[stage], epoch, reports, threads[stage])] = stage
                done = _wait_for_first_error(futures)
            except KeyboardInterrupt:
                self._cancel_all(stages, futures)
                raise Interrupted(f"interrupted during the {' and '.join(stages)} stages; finished stages "
                                  "stay cached") from None
            failed = [future for future in done if future.exception() is not None]
            if failed:
                self._cancel_all(stages, futures)
                raise failed[0].exception()  # type: ignore[misc]
        return {futures[future]: self._share(future.result()) for future in futures}

    def _cancel_all(self, stages: list[str], futures: dict[Future[StageReport], str]) -> None:
        """Stops every stage that has not finished, by name: a Ctrl-C during submit can
        leave a started stage without its future here. The pool's exit then waits until
        each runner has cleaned up after itself."""
        assert self.cancel is not None
        finished = {stage for future, stage in futures.items() if future.done()}
        for stage in stages:
            if stage not in finished:
                self.cancel(stage)

    def _share(self, report: StageReport) -> StageReport:
        """Offers a new entry to the shared store, from the main thread."""
        self.store.share(report.stage, report.key, report.record)
        return report

    def _since_start(self, moment: float) -> float:
        return moment - self.settings.origin

    def _cached(self, stage: str, key: str, hits: dict[Entry, Record]) -> StageReport | None:
        began = time.monotonic()
        record = hits.get((stage, key))
        if record is None and not self.forced(stage):
            self.store.lease(stage, key)
            found = self.store.record(stage, key)
            record = self._verify({(stage, key): found}).get((stage, key)) if found else self.store.fetch(stage, key)
        if record is None:
            return None
        self.progress.stage(stage, "cached")
        self.log.write(f"[{stage}] cached: {stage}/{key}\n")
        self.store.share(stage, key, record)
        return StageReport(stage, key, True, 0.0, record, started=self._since_start(began),
                           finished=self._since_start(time.monotonic()))

    def _run(self, stage: str, key: str, epoch: int, reports: dict[str, StageReport], threads: int) -> StageReport:
        spec = spec_of(stage)
        self.store.lease(stage, key)
        request = StageRequest(stage=stage, key=key, source_date_epoch=epoch,
                               inputs={name: reports[name].key for name in spec.inputs},
                               options=self.options[stage], threads=max(1, threads))
        began = time.monotonic()
        self.progress.stage(stage, "running")
        try:
            record, container, published = self.runner(spec, request)
        except LiveorchError:
            self.progress.stage(stage, "failed", time.monotonic() - began)
            raise
        ended = time.monotonic()
        self.progress.stage(stage, "done", ended - began)
        return StageReport(stage, key, False, ended - began, record, container, published,
                           started=self._since_start(began), finished=self._since_start(ended))
