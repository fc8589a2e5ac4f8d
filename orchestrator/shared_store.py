"""The store the stage loop sees: the local store, with a registry behind it when the build
was given one (--cache). A local miss is looked up in the registry; an entry found there is
pulled (beside other pulls and the stages that can already run), checked and published into
the local store before it counts; with --cache-push,
what this build ran or found locally goes up to the registry when the registry lacks it, in
the background while later stages run (`finish` waits for it).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from liveorch.orchestrator.errors import StageFailed
from liveorch.orchestrator.oci_registry import RegistryError
from liveorch.orchestrator.remote_cache import RemoteCache
from liveorch.orchestrator.stage_specs import spec_of
from liveorch.orchestrator.store import Store
from liveorch.stages.contract import Record

Entry = tuple[str, str]


@dataclass
class Traffic:
    pulled: int = 0  # bytes of stage outputs pulled from the registry
    pushed: int = 0  # bytes of stage outputs pushed to it


class SharedStore:
    def __init__(self, store: Store, remote: RemoteCache | None, say: Callable[[str], None]) -> None:
        self.store, self.remote, self.say = store, remote, say
        self.traffic = Traffic()
        self.counting = threading.Lock()  # pulls count their bytes from several threads
        self.pushes: ThreadPoolExecutor | None = None
        self.pending: list[Future[None]] = []

    def summary(self) -> dict[str, object]:
        """For report.json: the registry, and what went up and down."""
        assert self.remote is not None
        return {"registry": str(self.remote.ref), "push": self.remote.push_enabled, "used": self.remote.enabled,
                "pulled_bytes": self.traffic.pulled, "pushed_bytes": self.traffic.pushed}

    def lease(self, stage: str, key: str) -> None:
        self.store.lease(stage, key)

    def record(self, stage: str, key: str) -> Record | None:
        return self.store.record(stage, key)

    def verify(self, entries: list[Entry]) -> dict[Entry, str]:
        return self.store.verify(entries)

    def drop(self, entries: list[Entry]) -> None:
        self.store.drop(entries)

    def offer(self, stage: str, key: str) -> Record | None:
        """The registry's record of an entry (its layout checked), without its files."""
        if self.remote is None:
            return None
        found = self.remote.record(stage, key)
        return found[0] if found else None

    def pull(self, stage: str, key: str, record: Record) -> Record | None:
        """The entry `record` names, pulled into the local store (every byte checked on its way
        in); None when it turns out unusable. Pulls run side by side, in the stage loop's
        workers, each in a scratch volume of its own."""
        assert self.remote is not None
        with tempfile.TemporaryFile(prefix="liveorch-pull-") as spool:
            try:
                self.remote.spool(stage, record, spool)
                spool.seek(0)
                published = self.store.import_entry(spec_of(stage), key, spool)
            except (RegistryError, StageFailed) as error:
                message = error.message if isinstance(error, StageFailed) else str(error)
                self.say(f"note: remote cache {self.remote.ref}: the {stage} entry is not usable ({message}): "
                         "the stage runs here")
                return None
        if published.outputs != record.outputs:
            self.store.drop([(stage, key)])
            self.say(f"note: remote cache {self.remote.ref}: the {stage} entry is not the one its record names: "
                     "the stage runs here")
            return None
        size = sum(a.size for a in record.outputs.values())
        with self.counting:
            self.traffic.pulled += size
        self.say(f"[{stage}] pulled from {self.remote.ref} ({size / 1e6:.1f} MB)")
        return published

    def share(self, stage: str, key: str, record: Record) -> None:
        """With --cache-push, an entry the registry lacks goes up in the background, one at a
        time and in the order the stages finished, while the next stages run."""
        if self.remote is None or not self.remote.push_enabled:
            return
        if self.pushes is None:
            self.pushes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push")
        self.pending.append(self.pushes.submit(self._push, stage, key, record))

    def _push(self, stage: str, key: str, record: Record) -> None:
        assert self.remote is not None
        if not self.remote.enabled or self.remote.has(stage, key):
            return
        sent = self.remote.push(record, lambda name: self.store.open_output(stage, key, name,
                                                                          record.outputs[name].sha256))
        if self.remote.enabled:
            self.traffic.pushed += sent
            self.say(f"[{stage}] pushed to {self.remote.ref} ({sent / 1e6:.1f} MB new)")

    def finish(self, cancel: bool = False) -> None:
        """Waits for the pushes; raises what one of them raised. With `cancel` (the build
        failed or was stopped), pushes not started yet are dropped and only the one under
        way is waited for, so no keeper container is left behind."""
        if self.pushes is None:
            return
        self.pushes.shutdown(wait=True, cancel_futures=cancel)
        self.pushes = None
        pending, self.pending = self.pending, []
        if not cancel:
            for future in pending:
                future.result()
