#!/usr/bin/env python3
"""Measures liveorch on a description: cold build, warm build (package cache only),
no-op rebuild and a bootloader-only change; with --registry also two builds into an empty
store from a local registry the cold build pushed to (the same description, and one with
another bootloader timeout, whose iso stage runs while the rest is pulled); prints seconds
per stage ("cached" for a stage whose entry was found or pulled).

    .venv/bin/python bench/bench.py [examples/bookworm-live/config.xml] [--registry]

Runs in a private store volume that is removed afterwards (--keep to keep it).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liveorch.orchestrator.build import BuildOptions, run_build
from liveorch.orchestrator.cache import list_entries
from liveorch.orchestrator.engine import connect, remove_volume
from liveorch.orchestrator.images import STORE_IMAGE, content_tag
from liveorch.orchestrator.report import BuildReport
from liveorch.orchestrator.stage_specs import stage_names
from liveorch.orchestrator.store import run_keeper


def _quiet(message: str) -> None:
    pass


def _drop_stage_results(volume: str) -> None:
    """Keep only the package pool: the 'warm' case of a CI cache restore."""
    client = connect()
    results = [[e.stage, e.key] for e in list_entries(client, volume) if e.kind == "result"]
    run_keeper(client, content_tag(STORE_IMAGE), volume, "drop", {"entries": results})


def _with_timeout(config: Path, directory: Path, timeout: int) -> Path:
    tree = etree.parse(str(config), etree.XMLParser(resolve_entities=False, no_network=True))
    for bootloader in tree.iter("bootloader"):
        bootloader.set("timeout", str(timeout))
    target = directory / "config.xml"
    tree.write(str(target), xml_declaration=True, encoding="utf-8")
    return target


@contextlib.contextmanager
def _registry(directory: Path) -> Iterator[str]:
    """Debian's docker-registry on a free port of 127.0.0.1, for the registry-warm case."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (directory / "registry.yml").write_text(
        f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {directory / 'blobs'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    process = subprocess.Popen(["docker-registry", "serve", str(directory / "registry.yml")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        yield f"127.0.0.1:{port}/liveorch-bench"
    finally:
        process.terminate()
        process.wait()


def _cases(args: argparse.Namespace, tmp: Path, volume: str, cache: str | None) -> list[tuple[str, BuildReport]]:
    rows = []
    for case in ("cold", "warm (package cache only)", "no-op rebuild", "bootloader timeout changed"):
        # Only the cold build talks to the registry (it pushes what it built).
        options = BuildOptions(target_dir=tmp / "out", volume=volume, cache=cache if case == "cold" else None,
                               cache_push=cache is not None)
        config = args.config
        if case.startswith("warm"):
            _drop_stage_results(volume)
        if case.startswith("bootloader"):
            config = _with_timeout(args.config, tmp, 7)
        print(f"running: {case}", file=sys.stderr, flush=True)
        rows.append((case, run_build(config, options, _quiet)))
    if cache is not None:
        # Into an empty store each: everything pulled; then everything but the iso and
        # checksum pulled, which run while the root still streams in.
        for case, config in (("registry-warm (empty store)", args.config),
                             ("registry, timeout changed", _with_timeout(args.config, tmp, 5))):
            empty = f"{volume}-empty"
            print(f"running: {case}", file=sys.stderr, flush=True)
            try:
                rows.append((case, run_build(config, BuildOptions(target_dir=tmp / "warm", volume=empty, cache=cache),
                                             _quiet)))
            finally:
                remove_volume(connect(), empty)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="examples/bookworm-live/config.xml", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's store volume")
    parser.add_argument("--registry", action="store_true", help="also push to a local docker-registry and time a "
                                                              "build from it into an empty store")
    args = parser.parse_args()
    volume = f"liveorch-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="liveorch-bench-") as tmp, contextlib.ExitStack() as stack:
        cache = stack.enter_context(_registry(Path(tmp))) if args.registry else None
        try:
            rows = _cases(args, Path(tmp), volume, cache)
        finally:
            if not args.keep:
                remove_volume(connect(), volume)
    header = f"{'case':<28}" + "".join(f"{s:>10}" for s in stage_names()) + f"{'total':>10}"
    print(header)
    for case, report in rows:
        cells = "".join(f"{'cached' if r.cached else f'{r.seconds:.1f}':>10}" for r in report.stages)
        print(f"{case:<28}{cells}{report.seconds:>10.1f}")
    iso = rows[0][1]
    print(f"\nISO {iso.iso.name}: {iso.size / (1 << 20):.1f} MiB, {iso.packages} packages, sha256 {iso.sha256}")
    print(f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {len(os.sched_getaffinity(0))} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
