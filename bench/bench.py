#!/usr/bin/env python3
"""Measures liveorch on a description: cold build, warm build (package cache only),
no-op rebuild and a bootloader-only change; prints seconds per stage.

    .venv/bin/python bench/bench.py [examples/bookworm-live/config.xml]

Runs in a private store volume that is removed afterwards (--keep to keep it).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="examples/bookworm-live/config.xml", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's store volume")
    args = parser.parse_args()
    volume = f"liveorch-bench-{uuid.uuid4().hex[:8]}"
    rows: list[tuple[str, BuildReport]] = []
    with tempfile.TemporaryDirectory(prefix="liveorch-bench-") as tmp:
        options = BuildOptions(target_dir=Path(tmp) / "out", volume=volume)
        try:
            for case in ("cold", "warm (package cache only)", "no-op rebuild", "bootloader timeout changed"):
                config = args.config
                if case.startswith("warm"):
                    _drop_stage_results(volume)
                if case.startswith("bootloader"):
                    config = _with_timeout(args.config, Path(tmp), 7)
                print(f"running: {case}", file=sys.stderr, flush=True)
                rows.append((case, run_build(config, options, _quiet)))
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
