#!/usr/bin/env python3
"""Measures each root layout (KIWI's iso filesystem=) on a description: ISO size, the
seconds of the stages the layout reruns (squashfs, initrd, iso, checksum; the root is built
once and shared) and boot-to-login in QEMU (BIOS CD, one boot each, one at a time).

    .venv/bin/python bench/layouts.py [examples/bookworm-live/config.xml] [--password linux] [--only NAME ...]

squashfs and initrd run side by side, so "build s" (the build's wall time, root shared) is
less than the sum of the stage columns.

Runs in a private store volume that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liveorch.orchestrator.boot import BootMode, boot_and_login
from liveorch.orchestrator.build import BuildOptions, run_build
from liveorch.orchestrator.engine import connect, remove_volume
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.report import BuildReport

LAYOUTS = {
    "squashfs (default)": [],
    "ext4 in squashfs": ["filesystem=ext4"],
    "erofs lz4hc": ["filesystem=erofs"],
    "erofs lz4hc,12": ["filesystem=erofs", "erofscompression=lz4hc,12"],
    "xfs in squashfs": ["filesystem=xfs"],
    "squashfs + verity": ["verity_blocks=all"],
}
DEFAULT = "squashfs (default)"
LATE_STAGES = ("squashfs", "initrd", "iso", "checksum")


def _quiet(message: str) -> None:
    pass


def _row(name: str, report: BuildReport, wall: float, login: float) -> str:
    seconds = {s.stage: s.seconds for s in report.stages if not s.cached and s.stage in LATE_STAGES}
    stages = "".join(f"{seconds.get(stage, 0.0):>10.1f}" for stage in LATE_STAGES)
    return f"{name:<22}{report.size / (1 << 20):>9.1f}{stages}{wall:>10.1f}{login:>10.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="examples/bookworm-live/config.xml", type=Path)
    parser.add_argument("--password", default="linux", help="root's password in the description (for the boot)")
    parser.add_argument("--only", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS),
                        help="the layouts to measure (the default one always runs first: it builds the root)")
    args = parser.parse_args()
    layouts = {name: LAYOUTS[name] for name in LAYOUTS if name == DEFAULT or name in args.only}
    volume = f"liveorch-bench-{uuid.uuid4().hex[:8]}"
    rows = []
    with tempfile.TemporaryDirectory(prefix="liveorch-layouts-") as tmp:
        try:
            # The first (the default layout) builds the root the others share.
            for name, attrs in layouts.items():
                print(f"running: {name}", file=sys.stderr, flush=True)
                # QEMU's -drive splits on commas: the folder name must have none.
                target = Path(tmp) / "".join(c if c.isalnum() else "-" for c in name)
                began = time.monotonic()
                report = run_build(args.config, BuildOptions(target_dir=target, volume=volume,
                                                             overrides=Overrides(type_attrs=attrs)), _quiet)
                wall = time.monotonic() - began
                boot = boot_and_login(report.iso, BootMode(uefi=False, disk=False), args.password,
                                      command="findmnt -n -o SOURCE,FSTYPE /", log=target / "serial.log")
                rows.append(_row(name, report, wall, boot.seconds_to_login))
                print(rows[-1], file=sys.stderr, flush=True)
        finally:
            remove_volume(connect(), volume)
    columns = "".join(f"{s:>10}" for s in (*LATE_STAGES, "build s", "login s"))
    print(f"{'layout':<22}{'ISO MiB':>9}{columns}")
    print("\n".join(rows))
    print(f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {len(os.sched_getaffinity(0))} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
