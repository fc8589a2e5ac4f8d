"""The stage loop: each stage's key, a verified cache hit, a pull or a run, as a DAG.

Before anything runs, the loop looks up every stage whose inputs are already known to be
cached, leases those entries (so `cache prune` leaves them alone) and has the store keeper
hash them all in one go; an entry that no longer matches its record is dropped with a note
and its stage runs again. Entries only the shared store (a registry) has are known by their
records alone at that point, so their keys chain on, and all their pulls start at once.

Then each stage starts as soon as its inputs are there: a run when nothing has its entry,
beside whatever else is running or pulling (squashfs and initrd, which both need only the
root, run side by side; the iso stage can start while the root still streams in from the
registry). A stage whose key is known only once an earlier stage has run is looked up then.
When a stage fails, or Ctrl-C comes, running stages are cancelled (their containers stopped
and removed) and pulls under way finish cleaning up before the error is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any, Protocol

from liveorch.orchestrator.errors import Interrupted, LiveorchError
from liveorch.orchestrator.keys import stage_key
from liveorch.orchestrator.progress import Progress
from liveorch.orchestrator.stage_specs import spec_of, stage_names
from liveorch.stages.contract import Record, StageRequest, StageSpec

Entry = tuple[str, str]  # (stage, key)


class StoreView(Protocol):
    """The local store, and a shared one behind it: `offer` is the shared store's record of
    an entry the local store lacks (None when it has none), `pull` brings that entry in,
    checked (None when it turns out unusable); `share` offers an entry to the shared store."""

    def lease(self, stage: str, key: str) -> None: ...
    def record(self, stage: str, key: str) -> Record | None: ...
    def verify(self, entries: list[Entry]) -> dict[Entry, str]: ...
    def drop(self, entries: list[Entry]) -> None: ...
    def offer(self, stage: str, key: str) -> Record | None: ...
    def pull(self, stage: str, key: str, record: Record) -> Record | None: ...
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


def _wait_for_some(futures: dict[Future[StageReport | Record | None], Job]) -> set[Future[StageReport | Record | None]]:
    """Waits in short steps: a Ctrl-C may reach any thread, and the main thread acts on it
    only between steps, never while blocked in one long wait."""
    while True:
        done, _ = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
        if done:
            return done


def _interrupted(stopped: list[str]) -> Interrupted:
    during = f" during the {' and '.join(stopped)} stage{'s' if len(stopped) > 1 else ''}" if stopped else ""
    return Interrupted(f"interrupted{during}; finished stages stay cached")


class JobKind(StrEnum):
    RUN = "run"
    PULL = "pull"


@dataclass(frozen=True)
class Job:
    kind: JobKind
    stage: str
    key: str
    began: float = field(default_factory=time.monotonic, compare=False)


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

    def verified(self, found: dict[Entry, Record]) -> dict[Entry, Record]:
        """The entries whose files still hash to their records; the others are dropped."""
        bad = self.store.verify(list(found)) if found else {}
        for (stage, key), reason in sorted(bad.items()):
            self.progress.note(f"note: the cached {stage} result {key[:12]} failed verification ({reason}): "
                               "dropped, the stage runs again")
        self.store.drop(list(bad))
        return {entry: record for entry, record in found.items() if entry not in bad}

    def known_entries(self, stages: tuple[str, ...]) -> tuple[dict[Entry, Record], dict[Entry, Record]]:
        """The local entries this build can use, each checked against its record, and the
        shared store's records of those only it has (to pull): both chain on, key to key."""
        found: dict[Entry, Record] = {}
        offered: dict[Entry, Record] = {}
        records: dict[str, Record] = {}
        epoch = self.settings.epoch
        for stage in stages:
            if self.forced(stage) or any(name not in records for name in spec_of(stage).inputs):
                continue
            key = self.key(stage, epoch, records)
            self.store.lease(stage, key)
            record = self.store.record(stage, key)
            if record is not None:
                found[(stage, key)] = record
            elif (record := self.store.offer(stage, key)) is not None:
                offered[(stage, key)] = record
            else:
                continue
            records[stage] = record
            if stage == "resolve":
                epoch = _epoch_of(record)
        return self.verified(found), offered

    def run(self, until: str | None = None) -> dict[str, StageReport]:
        names = stage_names()
        stages = tuple(names[: names.index(until) + 1] if until else names)
        hits, offered = self.known_entries(stages)
        return Schedule(self, stages, hits).run(offered)

    def share(self, report: StageReport) -> StageReport:
        """Offers a new entry to the shared store, from the main thread."""
        self.store.share(report.stage, report.key, report.record)
        return report

    def since_start(self, moment: float) -> float:
        return moment - self.settings.origin

    def cached(self, stage: str, key: str, record: Record, began: float) -> StageReport:
        self.progress.stage(stage, "cached")
        self.log.write(f"[{stage}] cached: {stage}/{key}\n")
        return self.share(StageReport(stage, key, True, 0.0, record, started=self.since_start(began),
                                      finished=self.since_start(time.monotonic())))

    def local_entry(self, stage: str, key: str) -> Record | None:
        """A key known only now (an earlier stage ran): the local store's verified entry."""
        if self.forced(stage):
            return None
        self.store.lease(stage, key)
        found = self.store.record(stage, key)
        return self.verified({(stage, key): found}).get((stage, key)) if found else None

    def pull(self, stage: str, key: str, record: Record) -> Record | None:
        """The shared store's entry into the local one (checked on its way in), in a worker."""
        self.progress.stage(stage, "pulling")
        pulled = self.store.pull(stage, key, record)
        if pulled is None:
            self.progress.stage(stage, "pending")
        return pulled

    def execute(self, stage: str, key: str, epoch: int, reports: dict[str, StageReport],
                threads: int) -> StageReport:
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
                           started=self.since_start(began), finished=self.since_start(ended))


class Schedule:
    """One build's jobs on a pool. Keys chain through the records known so far: an entry
    that is here, or one the shared store offers (its pull under way). A stage runs once
    each input's entry is here and matches the chain; the build is done when every stage's
    entry is here and matches the chain (which then runs through entries that are here). So when a pull fails and
    its stage runs instead with other bytes, what was chained on the offer is looked up or
    run again under its new key, and nothing built on the bad link is kept."""

    def __init__(self, loop: StageLoop, stages: tuple[str, ...], hits: dict[Entry, Record]) -> None:
        self.loop, self.stages, self.hits = loop, stages, hits
        self.done: dict[str, StageReport] = {}  # entries here (hit, pulled or run), by stage
        self.offers: dict[str, tuple[str, Record]] = {}  # what the shared store offers: key, record
        self.refused: set[Entry] = set()  # offers whose pull failed: never pulled again
        self.jobs: dict[Future[StageReport | Record | None], Job] = {}
        self.pool: ThreadPoolExecutor | None = None
        # Runs being submitted: a Ctrl-C between a submit and its entry in `jobs` must still
        # find a started stage by name.
        self.launching: list[str] = []

    def chain_record(self, stage: str) -> Record | None:
        key = self.chain_key(stage)
        report = self.done.get(stage)
        if key is not None and report is not None and report.key == key:
            return report.record
        offered = self.offers.get(stage)
        return offered[1] if key is not None and offered is not None and offered[0] == key else None

    def chain_key(self, stage: str) -> str | None:
        records = {name: self.chain_record(name) for name in spec_of(stage).inputs}
        if any(record is None for record in records.values()):
            return None
        epoch = self.loop.settings.epoch
        if stage != "resolve":
            resolve = self.chain_record("resolve")
            if resolve is None:
                return None
            epoch = _epoch_of(resolve)
        return self.loop.key(stage, epoch, records)  # type: ignore[arg-type]

    def here(self, stage: str) -> bool:
        """Its entry is here and matches the chain."""
        report = self.done.get(stage)
        return report is not None and report.key == self.chain_key(stage)

    def run(self, offered: dict[Entry, Record]) -> dict[str, StageReport]:
        with ThreadPoolExecutor(max_workers=2 * len(self.stages), thread_name_prefix="stage") as pool:
            self.pool = pool
            try:
                for (stage, key), record in offered.items():
                    self.start_pull(stage, key, record)
                while self.start_ready():
                    if not self.jobs:
                        raise LiveorchError("the stage loop has nothing left to run, but stages are missing: "
                                            f"{', '.join(s for s in self.stages if not self.here(s))}")
                    for future in _wait_for_some(self.jobs):
                        self.finished(future)
            except KeyboardInterrupt:
                raise _interrupted(self.stop()) from None
            except BaseException:
                self.stop()
                raise
        return {stage: self.done[stage] for stage in self.stages}

    def submit(self, job: Job, action: Callable[..., StageReport | Record | None], *args: Any) -> None:
        assert self.pool is not None
        self.jobs[self.pool.submit(action, *args)] = job

    def start_pull(self, stage: str, key: str, record: Record) -> None:
        self.offers[stage] = (key, record)
        self.submit(Job(JobKind.PULL, stage, key), self.loop.pull, stage, key, record)

    def busy(self, stage: str) -> bool:
        return any(job.stage == stage for job in self.jobs.values())

    def start_ready(self) -> bool:
        """Looks up, pulls or runs each stage whose inputs are here, until nothing changes;
        False when every stage is done."""
        runs: dict[str, str] = {}
        changed = True
        while changed:
            changed = False
            for stage in self.stages:
                key = self.chain_key(stage)
                if stage in runs or key is None or self.busy(stage) or self.here(stage):
                    continue
                if not all(self.here(name) for name in spec_of(stage).inputs):
                    continue
                began = time.monotonic()
                record = self.hits.get((stage, key)) or self.loop.local_entry(stage, key)
                if record is not None:
                    self.done[stage] = self.loop.cached(stage, key, record, began)
                    changed = True
                elif (offer := self.offer(stage, key)) is not None:
                    self.start_pull(stage, key, offer)
                else:
                    runs[stage] = key
        self.start_runs(runs)
        return not all(self.here(stage) for stage in self.stages)

    def offer(self, stage: str, key: str) -> Record | None:
        if self.loop.forced(stage) or (stage, key) in self.refused:
            return None
        return self.loop.store.offer(stage, key)

    def start_runs(self, runs: dict[str, str]) -> None:
        """Runs started together share the cores; without `cancel`, one run at a time."""
        if self.loop.cancel is None:
            if any(job.kind is JobKind.RUN for job in self.jobs.values()):
                return
            runs = dict(list(runs.items())[:1])
        threads = thread_budgets(list(runs), self.loop.settings.cpus)
        self.launching = list(runs)
        for stage, key in runs.items():
            resolve = self.chain_record("resolve")
            epoch = _epoch_of(resolve) if stage != "resolve" and resolve else self.loop.settings.epoch
            self.submit(Job(JobKind.RUN, stage, key), self.loop.execute, stage, key, epoch, dict(self.done),
                        threads[stage])
        self.launching = []

    def finished(self, future: Future[StageReport | Record | None]) -> None:
        job = self.jobs.pop(future)
        outcome = future.result()  # a run's error stops the build here
        if isinstance(outcome, StageReport):
            self.done[job.stage] = self.loop.share(outcome)
        elif outcome is not None:
            self.done[job.stage] = self.loop.cached(job.stage, job.key, outcome, job.began)
        else:  # a pull that was refused: the stage is looked up or run instead
            self.refused.add((job.stage, job.key))
            self.offers.pop(job.stage, None)

    def stop(self) -> list[str]:
        """Cancels every run under way (pulls finish: each cleans up after itself); the
        pool's exit then waits until each job has."""
        running = {job.stage for job in self.jobs.values() if job.kind is JobKind.RUN} | set(self.launching)
        stopped = [stage for stage in self.stages if stage in running]
        if self.loop.cancel is not None:
            for stage in stopped:
                self.loop.cancel(stage)
        return stopped
