#!/usr/bin/env python3
"""Races liveorch against KIWI on one description, cold, one after the other: liveorch's
build into an empty store, the floor (tar2sqfs of liveorch's root tar alone, at the same
compression and thread count), then `kiwi-ng system build` when kiwi-ng is installed and this
runs as root. Prints the CPU count and load, both wall times, their ratio, the ISO sizes and
each tool's phases.

    sudo .venv/bin/python bench/race_kiwi.py [bench/kiwi-live/config.xml] [--profile Live]
                                             [--repro] [--no-kiwi]

--repro builds liveorch a second time with --no-cache and compares the ISOs' sha256.
Nothing else should run meanwhile: these machines are noisy, so the load is printed too.
Debian's `kiwi` package provides kiwi-ng (9.24 on bookworm); KIWI needs root, mounts and
loop devices, which is why it is raced here and never run by liveorch itself.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liveorch.orchestrator.build import BuildOptions, run_build
from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.engine import connect, engine_cpus, remove_volume
from liveorch.orchestrator.images import content_tag
from liveorch.orchestrator.plan import make_plan
from liveorch.orchestrator.report import BuildReport
from liveorch.stages.contracts.rootfs import ROOT_TAR
from liveorch.stages.contracts.squashfs import Compression
from liveorch.stages.squashfs import tar2sqfs_argv

# KIWI's log lines that open each of its phases, in order: (phase, what the line contains).
KIWI_PHASES = (("bootstrap", "Setting up new root system"), ("install", "Installing system"),
               ("config", "Calling config.sh script"), ("live iso", "Creating live ISO image"))
KIWI_TIME = re.compile(r"\[ (?:INFO|DEBUG|WARNING)\s*\]: (\d\d):(\d\d):(\d\d)")


@dataclass
class Entrant:
    name: str
    seconds: float
    iso: Path | None
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def mib(self) -> float:
        return self.iso.stat().st_size / (1 << 20) if self.iso and self.iso.exists() else 0.0


def _liveorch(config: Path, profiles: tuple[str, ...], target: Path, volume: str, no_cache: bool = False
              ) -> tuple[Entrant, BuildReport]:
    began = time.monotonic()
    report = run_build(config, BuildOptions(target_dir=target, profiles=profiles, volume=volume, no_cache=no_cache),
                       lambda _: None)
    phases = {r.stage: r.seconds for r in report.stages}
    return Entrant("liveorch", time.monotonic() - began, report.iso, phases), report


def _floor(volume: str, report: BuildReport, compression: str, threads: int) -> float:
    """tar2sqfs of the root tar alone, with the squashfs stage's own options, in its image:
    the least any builder must spend turning this root into a squashfs at this compression."""
    rootfs = next(r for r in report.stages if r.stage == "rootfs")
    argv = tar2sqfs_argv(Compression(compression), 0, Path("/tmp/floor.img"), threads)
    script = f"{shlex.join(str(a) for a in argv)} < /store/rootfs/{rootfs.key}/{ROOT_TAR}"
    began = time.monotonic()
    connect().containers.run(content_tag("squashfs"), entrypoint=["sh", "-c", script], remove=True,
                             volumes={volume: {"bind": "/store", "mode": "ro"}}, network_mode="none")
    return time.monotonic() - began


def _kiwi_phases(log: Path) -> dict[str, float]:
    """Seconds from each phase's first log line to the next phase's (the last to the log's end)."""
    starts: dict[str, int] = {}
    last = 0
    for line in log.read_text(errors="replace").splitlines():
        stamp = KIWI_TIME.search(line)
        if not stamp:
            continue
        hours, minutes, seconds = (int(g) for g in stamp.groups())
        last = hours * 3600 + minutes * 60 + seconds
        for phase, marker in KIWI_PHASES:
            if marker in line and phase not in starts:
                starts[phase] = last
    ordered = [phase for phase, _ in KIWI_PHASES if phase in starts]
    ends = [starts[p] for p in ordered[1:]] + [last]
    return {phase: float((end - starts[phase]) % 86400) for phase, end in zip(ordered, ends, strict=True)}


def _kiwi(config: Path, profiles: tuple[str, ...], target: Path) -> Entrant:
    description = target / "description"
    shutil.copytree(config.parent, description)
    argv = ["kiwi-ng", "--logfile", str(target / "kiwi.log"), *[a for p in profiles for a in ("--profile", p)],
            "--type", "iso", "system", "build", "--description", str(description), "--target-dir", str(target / "out")]
    began = time.monotonic()
    completed = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - began
    if completed.returncode != 0:
        kept = Path(tempfile.gettempdir()) / "liveorch-race-kiwi.log"
        shutil.copyfile(target / "kiwi.log", kept)
        raise SystemExit(f"kiwi-ng failed ({completed.returncode}); its log: {kept}: "
                         f"{completed.stderr.strip()[-300:]}")
    iso = next((target / "out").glob("*.iso"), None)
    return Entrant("kiwi-ng", seconds, iso, _kiwi_phases(target / "kiwi.log"))


def _row(entrant: Entrant) -> str:
    phases = ", ".join(f"{name} {seconds:.0f}" for name, seconds in entrant.phases.items())
    return f"{entrant.name:<10}{entrant.seconds:>9.1f}{entrant.mib:>10.1f}  {phases}"


def _print_ours(ours: Entrant, floor: float, cpus: int, load: tuple[float, float, float]) -> None:
    print(f"{cpus} cores, load average before the race {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'builder':<10}{'wall s':>9}{'ISO MiB':>10}  phases (s)")
    print(_row(ours))
    print(f"{'floor':<10}{floor:>9.1f}{'':>10}  tar2sqfs of liveorch's root tar alone", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=Path(__file__).parent / "kiwi-live" / "config.xml", type=Path)
    parser.add_argument("--profile", action="append", default=None, help="profile(s) to build (default: Live)")
    parser.add_argument("--repro", action="store_true", help="build liveorch twice and compare the ISOs")
    parser.add_argument("--no-kiwi", action="store_true", help="skip KIWI even when it is installed")
    args = parser.parse_args()
    profiles = tuple(args.profile or ["Live"])
    run_kiwi = not args.no_kiwi and shutil.which("kiwi-ng") is not None and os.geteuid() == 0
    if not args.no_kiwi and not run_kiwi:
        print("note: kiwi-ng is not installed or this is not root: racing liveorch alone", file=sys.stderr)
    load, cpus = os.getloadavg(), engine_cpus(connect())
    volume = f"liveorch-race-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="liveorch-race-") as tmp:
        try:
            print("running: liveorch, cold", file=sys.stderr, flush=True)
            ours, report = _liveorch(args.config, profiles, Path(tmp) / "liveorch", volume)
            print("running: the floor (tar2sqfs alone)", file=sys.stderr, flush=True)
            squashfs = make_plan(parse_description(args.config, profiles)).options["squashfs"]
            floor = _floor(volume, report, squashfs.compression.value, cpus)
            if args.repro:
                print("running: liveorch again, --no-cache", file=sys.stderr, flush=True)
                _, again = _liveorch(args.config, profiles, Path(tmp) / "again", volume, no_cache=True)
                print(f"bit-identical: {again.sha256 == report.sha256} ({report.sha256[:16]})")
        finally:
            remove_volume(connect(), volume)
        _print_ours(ours, floor, cpus, load)
        if run_kiwi:
            print("running: kiwi-ng, cold", file=sys.stderr, flush=True)
            kiwi = _kiwi(args.config, profiles, Path(tmp) / "kiwi")
            print(_row(kiwi))
            print(f"\nratio liveorch/kiwi-ng: {ours.seconds / kiwi.seconds:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
