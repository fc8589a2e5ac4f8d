"""report.json: the build's inputs and every stage's record, what users and tools read
instead of logs. It never holds a secret: user passwords reach it only as part of a cache
key, which hashes the crypt(3) hash the plan made.

It also holds what report.html draws: when each stage started and ended (seconds since the
build started), the boot menu, the largest packages and the checks that ran. None of it feeds
a cache key or the ISO: report.json is written after the stages and read by no stage."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from liveorch import __version__
from liveorch.orchestrator.containers import StageLimits
from liveorch.orchestrator.description import Description
from liveorch.orchestrator.images import StageImage
from liveorch.orchestrator.pipeline import StageReport
from liveorch.orchestrator.plan import BuildPlan
from liveorch.orchestrator.report_checks import build_checks
from liveorch.stages.contract import canonical_json
from liveorch.stages.contracts.resolve import DEBS

LARGEST_PACKAGES = 25


@dataclass
class BuildReport:
    """What a finished build hands back to its caller (the CLI's summary, tests)."""

    iso: Path
    sha256: str
    size: int
    packages: int
    seconds: float
    log: Path
    stages: list[StageReport] = field(default_factory=list)
    pxe: Path | None = None  # the network-boot bundle's directory
    files: list[Path] = field(default_factory=list)  # everything the build wrote into the target directory


@dataclass(frozen=True)
class BuildInputs:
    description: Description
    payload_sha256: str | None
    plan: BuildPlan
    images: dict[str, StageImage]
    limits: StageLimits
    changes: dict[str, Any]  # kiwi-ng's description changes (--set-repo, ...), for `rebuild`


def _stage(report: StageReport, image: StageImage) -> dict[str, Any]:
    return {
        "stage": report.stage,
        "image": image.id,
        "image_tag": image.tag,
        "image_digest": image.digest,
        "code": image.context,
        "key": report.key,
        "cached": report.cached,
        "published": report.published,
        "seconds": round(report.seconds, 2),
        "started": round(report.started, 2),
        "finished": round(report.finished, 2),
        "stage_seconds": report.record.seconds,
        "outputs": {name: {"size": a.size, "sha256": a.sha256} for name, a in sorted(report.record.outputs.items())
                    if not name.startswith(DEBS)},
        "tools": report.record.tools,
        "facts": report.record.facts,
        "container": report.container,
    }


def boot_menu(plan: BuildPlan) -> dict[str, Any]:
    """The menu as the plan made it for grub.cfg: the first entry boots by default."""
    iso = plan.options["iso"]
    menu = iso.menu
    return {"firmware": iso.firmware.value, "terminal": menu.terminal.value, "timeout": menu.timeout,
            "timeout_style": menu.timeout_style.value,
            "entries": [{"title": e.title, "kernel_cmdline": e.kernel_cmdline} for e in menu.entries]}


def installed_sizes(package_info: list[dict[str, Any]], largest: int = LARGEST_PACKAGES) -> dict[str, Any]:
    """dpkg's Installed-Size (uncompressed) of the packages that take most of the root; None
    for a root whose package-info.json predates the field."""
    sized = [p for p in package_info if isinstance(p.get("installed_size"), int)]
    ranked = sorted(sized, key=lambda p: (-p["installed_size"], p["name"]))[:largest]
    return {"total": sum(p["installed_size"] for p in sized) if sized else None,
            "largest": [{"name": p["name"], "version": p["version"], "size": p["installed_size"]} for p in ranked]}


def _verified_lines(report: BuildReport, plan: BuildPlan) -> int:
    verified = report.iso.parent / f"{plan.basename}.verified"
    if not verified.is_file():
        return 0
    return sum(1 for line in verified.read_text().splitlines() if line.strip() and not line.startswith("#"))


def build_record(inputs: BuildInputs, report: BuildReport, lock: dict[str, Any],
                 package_info: list[dict[str, Any]]) -> dict[str, Any]:
    description = inputs.description
    return {
        "liveorch": __version__,
        "description": {
            "path": str(description.path),
            "sha256": hashlib.sha256(description.path.read_bytes()).hexdigest(),
            "payload_sha256": inputs.payload_sha256,
            "name": description.name,
            "version": description.version,
            "summary": description.summary,
            "profiles": list(description.profiles),
            "changes": inputs.changes,
        },
        "repositories": lock.get("repositories", []),
        "trust": {"warnings": inputs.plan.warnings,
                  "unsigned_repositories": [r["alias"] for r in lock.get("repositories", []) if r.get("trusted")]},
        "lock_sha256": hashlib.sha256(canonical_json(lock).encode()).hexdigest(),
        "source_date_epoch": lock.get("source_date_epoch"),
        "notes": inputs.plan.notes,
        "live_root": inputs.plan.live_root,
        "limits": {"memory": inputs.limits.memory, "pids": inputs.limits.pids, "timeout": inputs.limits.timeout},
        "stages": [_stage(s, inputs.images[s.stage]) for s in report.stages],
        "iso": {"name": report.iso.name, "size": report.size, "sha256": report.sha256},
        "packages": report.packages,
        "installed_size": installed_sizes(package_info),
        "boot": boot_menu(inputs.plan),
        "checks": build_checks(inputs.plan, report.stages, lock, report.packages, _verified_lines(report, inputs.plan)),
        "seconds": round(report.seconds, 2),
    }
