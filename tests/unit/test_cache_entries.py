"""What the artifact volume holds, by kind: what `cache prune` and `liveorch clean` may remove."""

from __future__ import annotations

import pytest

from liveorch.orchestrator.cache import CacheEntry


@pytest.mark.parametrize(("stage", "key", "complete", "kind", "build"), [
    ("rootfs", "0f" * 32, True, "result", None),
    ("pool", "debs", False, "store", None),
    ("description", "ab" * 32, False, "store", None),
    ("rootfs", ".work-0123456789abcdef-a1b2c3d4e5f6", False, "work", "a1b2c3d4e5f6"),
    ("rootfs", ".retired-" + "0f" * 32 + "-1234abcd", False, "work", None),
    ("kept", "a1b2c3d4e5f6-rootfs", False, "kept", None),
])
def test_entry_kinds(stage: str, key: str, complete: bool, kind: str, build: str | None) -> None:
    entry = CacheEntry(stage, key, 1, 0.0, complete)
    assert (entry.kind, entry.build) == (kind, build)
