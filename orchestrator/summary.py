"""What the CLI shows after a verb: a build's summary (a table or one JSON object) and the
cache's entries. Formatting only; nothing here talks to the engine."""

from __future__ import annotations

import json
import time

from liveorch.orchestrator.cache import CacheEntry
from liveorch.orchestrator.report import BuildReport

KIND_NOTE = {"result": "", "pool": "", "work": " (unfinished)", "kept": " (kept work)"}


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


def print_json_summary(report: BuildReport) -> None:
    print(json.dumps({"event": "summary", "iso": str(report.iso), "sha256": report.sha256, "bytes": report.size,
                      "packages": report.packages, "seconds": round(report.seconds, 2), "log": str(report.log),
                      "report": str(report.iso.with_name(report.iso.name.removesuffix(".iso") + ".report.json")),
                      "pxe": str(report.pxe) if report.pxe else None,
                      "stages": {s.stage: {"cached": s.cached, "seconds": round(s.seconds, 2)}
                                 for s in report.stages}}))


def print_cache_entries(entries: list[CacheEntry], volume: str) -> None:
    now = time.time()
    results = [e for e in entries if e.kind != "pool"]
    pool = [e for e in entries if e.kind == "pool"]
    for e in results:
        print(f"{e.stage:<9} {e.key[:24]:<24} {e.bytes / 1e6:10.1f} MB {(now - e.mtime) / 3600:8.1f} h"
              f"{KIND_NOTE[e.kind]}")
    if pool:
        print(f"{'pool':<9} {f'{len(pool)} packages':<24} {sum(e.bytes for e in pool) / 1e6:10.1f} MB")
    total = sum(e.bytes for e in entries)
    print(f"{len(results)} entries and {len(pool)} pooled packages, {total / 1e6:.1f} MB in volume {volume}")


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
