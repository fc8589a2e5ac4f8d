"""What the CLI shows after a verb: a build's summary (a table or one JSON object) and the
cache's entries. Formatting only; nothing here talks to the engine."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

from liveorch.orchestrator.cache import CacheEntry, EntryKind
from liveorch.orchestrator.human import aligned, count, format_age, format_size
from liveorch.orchestrator.report import BuildReport

CACHE_HEADER = ["stage", "key", "size", "last used", "build", "profiles", "description"]
SCRATCH_KEY = {EntryKind.WORK: "(unfinished)", EntryKind.KEPT: "(kept work)"}


def print_summary(report: BuildReport) -> None:
    print()
    print(f"{'stage':<10} {'state':<7} {'seconds':>8}")
    for stage in report.stages:
        print(f"{stage.stage:<10} {'cached' if stage.cached else 'built':<7} {stage.seconds:>8.1f}")
    print(f"\nISO      {report.iso}")
    print(f"size     {report.size / (1 << 20):.1f} MiB")
    print(f"sha256   {report.sha256}")
    print(f"packages {report.packages}")
    print(f"time     {report.seconds:.1f} s")
    if report.pxe:
        print(f"PXE      {report.pxe}  (try it: liveorch serve-pxe {report.pxe.parent})")
    if report.files:
        print("\nwrote")
        for path in report.files:
            print(f"  {_shown(path)}" + (f"  ({lock_use_hint(path, None)})" if path.suffix == ".lock" else ""))
    print("\nnext")
    for command, why in next_steps(report):
        print(f"  {command:<60} # {why}")


def lock_use_hint(lock: Path, description: Path | None) -> str:
    """How a lock gets used, said where it is written: `run` reads `<name>.lock` beside the
    description (its config.xml) by itself; anywhere else it needs --lock."""
    if description is not None and lock.resolve().parent == description.resolve().parent:
        return "run uses it from beside the description; --update-lock resolves anew"
    return (f"to build exactly these packages again, copy it beside the description "
            f"or pass run --lock {shlex.quote(_shown(lock))}")


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it: what the user typed."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def next_steps(report: BuildReport) -> list[tuple[str, str]]:
    """What a user usually does after a build, with this build's own paths filled in."""
    iso = shlex.quote(_shown(report.iso))
    steps = [(f"liveorch test {iso}", "boot it headless in QEMU, log in, run --command"),
             (f"qemu-system-x86_64 -m 2048 -cdrom {iso} -serial stdio", "boot it yourself")]
    page = report.iso.with_name(report.iso.name.removesuffix(".iso") + ".report.html")
    if page.exists():
        steps.append((shlex.quote(_shown(page)), "where the time and the bytes went (open in a browser)"))
    return steps


def print_json_summary(report: BuildReport) -> None:
    print(json.dumps({"event": "summary", "iso": str(report.iso), "sha256": report.sha256, "bytes": report.size,
                      "packages": report.packages, "seconds": round(report.seconds, 2), "log": str(report.log),
                      "report": str(report.iso.with_name(report.iso.name.removesuffix(".iso") + ".report.json")),
                      "pxe": str(report.pxe) if report.pxe else None,
                      "stages": {s.stage: {"cached": s.cached, "seconds": round(s.seconds, 2)}
                                 for s in report.stages}}))


def _cache_row(entry: CacheEntry, now: float) -> list[str]:
    """A scratch volume (a running or interrupted build's, or one kept by --keep-work) is named
    in full, for `docker run -v`; the keeper cannot see its size. A result published before
    origins were kept shows dashes."""
    age = format_age(now - entry.mtime)
    if entry.kind in SCRATCH_KEY:
        note = " (`liveorch clean` removes it)" if entry.kind == EntryKind.KEPT else ""
        return [entry.stage, SCRATCH_KEY[entry.kind], "-", age, entry.build or "-", "-", f"volume {entry.key}{note}"]
    origin = entry.origin
    if origin is None:
        return [entry.stage, entry.key[:12], format_size(entry.bytes), age, "-", "-", "-"]
    return [entry.stage, entry.key[:12], format_size(entry.bytes), age, origin.build or "-",
            ",".join(origin.profiles) or "-", origin.description or "-"]


def cache_lines(entries: list[CacheEntry], volume: str, now: float) -> list[str]:
    """`cache ls`: one row per result (newest use first within a stage) and scratch volume,
    the package pool as one row, then the totals."""
    rows = [_cache_row(e, now) for e in sorted(entries, key=lambda e: (e.stage, -e.mtime)) if e.kind != EntryKind.POOL]
    pool = [e for e in entries if e.kind == EntryKind.POOL]
    if pool:
        rows.append(["pool", f"{len(pool)} packages", format_size(sum(e.bytes for e in pool)),
                     format_age(now - max(e.mtime for e in pool)), "-", "-", "-"])
    results = sum(e.kind == EntryKind.RESULT for e in entries)
    scratch = len(entries) - results - len(pool)
    counts = [count(results, "result"), *([count(scratch, "scratch volume")] if scratch else []),
              count(len(pool), "package")]
    total = format_size(sum(e.bytes for e in entries))
    footer = f"{', '.join(counts)}: {total} in volume {volume}"
    return [*aligned([CACHE_HEADER, *rows], right=frozenset({2, 3})), footer] if rows else [footer]


def print_cache_entries(entries: list[CacheEntry], volume: str) -> None:
    for line in cache_lines(entries, volume, time.time()):
        print(line)


def print_comparison(shas: list[tuple[str, str]], identical: bool, same: str, stage: str | None,
                     files: list[str], differs: str) -> None:
    """verify-repro's and rebuild's verdict: the two sha256, then what matched or differs."""
    width = max(len(label) for label, _ in shas)
    for label, sha in shas:
        print(f"{label:<{width}} {sha}")
    if identical:
        print(same)
    else:
        print(f"{differs}: the {stage} stage differs in {', '.join(files)}")
