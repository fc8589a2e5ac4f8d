"""--cache-push in the background: a finished stage's entry goes up while later stages run,
one push at a time, in order; a failed or stopped build waits only for the push under way."""

from __future__ import annotations

import io
import threading
from contextlib import contextmanager
from typing import Any

import pytest

from liveorch.orchestrator.shared_store import SharedStore
from liveorch.stages.contract import Artifact, Record


def record(stage: str) -> Record:
    return Record(stage=stage, key=f"{stage}-key", outputs={"out": Artifact(size=3, sha256="0" * 64)}, tools={},
                  facts={}, seconds=1.0)


class SlowRegistry:
    """A registry stand-in whose pushes wait for `release`, to see what runs meanwhile."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.push_enabled, self.enabled, self.ref = True, True, "127.0.0.1:5000/cache"
        self.release = threading.Event()
        self.started: list[str] = []
        self.pushed: list[str] = []
        self.fail_on = fail_on

    def has(self, stage: str, key: str) -> bool:
        return False

    def push(self, entry: Record, open_output: Any) -> int:
        self.started.append(entry.stage)
        assert self.release.wait(5)
        if entry.stage == self.fail_on:
            raise RuntimeError(f"pushing {entry.stage} broke")
        with open_output("out") as source:
            size = len(source.read())
        self.pushed.append(entry.stage)
        return size


class LocalStore:
    @contextmanager
    def open_output(self, stage: str, key: str, output: str, sha256: str):  # type: ignore[no-untyped-def]
        yield io.BytesIO(b"abc")


def shared(registry: SlowRegistry, said: list[str]) -> SharedStore:
    return SharedStore(LocalStore(), registry, said.append)  # type: ignore[arg-type]


def test_share_returns_at_once_and_finish_waits_for_every_push_in_order() -> None:
    registry, said = SlowRegistry(), []
    store = shared(registry, said)
    for stage in ("resolve", "rootfs", "squashfs"):
        store.share(stage, f"{stage}-key", record(stage))
    assert registry.pushed == []  # nothing went up yet: the caller went on
    registry.release.set()
    store.finish()
    assert registry.pushed == ["resolve", "rootfs", "squashfs"]
    assert store.traffic.pushed == 9
    assert said == [f"[{s}] pushed to 127.0.0.1:5000/cache (0.0 MB new)" for s in ("resolve", "rootfs", "squashfs")]


def test_a_push_that_fails_is_raised_by_finish() -> None:
    registry = SlowRegistry(fail_on="rootfs")
    store = shared(registry, [])
    store.share("resolve", "resolve-key", record("resolve"))
    store.share("rootfs", "rootfs-key", record("rootfs"))
    registry.release.set()
    with pytest.raises(RuntimeError, match="pushing rootfs broke"):
        store.finish()


def test_a_cancelled_build_waits_only_for_the_push_under_way() -> None:
    registry = SlowRegistry()
    store = shared(registry, [])
    for stage in ("resolve", "rootfs", "squashfs"):
        store.share(stage, f"{stage}-key", record(stage))
    while not registry.started:
        threading.Event().wait(0.01)
    queued = store.pending[1:]
    finishing = threading.Thread(target=store.finish, kwargs={"cancel": True})
    finishing.start()
    while not all(future.cancelled() for future in queued):
        threading.Event().wait(0.01)
    assert finishing.is_alive()  # still waiting for the push under way
    registry.release.set()
    finishing.join(5)
    assert registry.pushed == ["resolve"] and not finishing.is_alive()


def test_without_push_nothing_starts() -> None:
    registry = SlowRegistry()
    registry.push_enabled = False
    store = shared(registry, [])
    store.share("resolve", "resolve-key", record("resolve"))
    store.finish()
    assert registry.started == [] and store.pushes is None
