"""Results out of the store into the target directory, KIWI-style.

Which outputs go out, and under which names, the stage contracts declare (`Output.export`);
where two stages export one name the later one wins (the checksum stage's ISO, with its MD5
implanted, over the iso stage's). Every file is written under a temporary name and renamed
into place, never through a symlink, its sha256 checked on the way; the ISO goes last, so
its presence means everything else is there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from liveorch.orchestrator.errors import LiveorchError
from liveorch.orchestrator.pipeline import StageReport
from liveorch.orchestrator.plan import BuildPlan
from liveorch.orchestrator.sbom import make_sbom
from liveorch.orchestrator.stage_specs import stage_specs
from liveorch.orchestrator.target_files import write_file_atomic
from liveorch.stages.contract import Artifact
from liveorch.stages.contracts.rootfs import PACKAGE_INFO


class StoreReader(Protocol):
    def read(self, stage: str, key: str, output: str) -> bytes | None: ...
    def export(self, stage: str, key: str, output: str, target: Path, sha256: str) -> None: ...


@dataclass(frozen=True)
class Export:
    stage: str
    key: str
    output: str
    artifact: Artifact


def sbom_name(plan: BuildPlan) -> str:
    return f"{plan.basename}.spdx.json"


def export_names(plan: BuildPlan) -> list[str]:
    """Every name a build may write into the target directory (checked for planted symlinks first)."""
    names = [_name(o.export, plan) for spec in stage_specs().values() for o in spec.outputs if o.export]
    return [*names, sbom_name(plan), f"{plan.basename}.report.json", f"{plan.basename}.report.html",
            f"{plan.basename}.pxe"]


def _name(template: str, plan: BuildPlan) -> str:
    return template.format(image=plan.image_name, basename=plan.basename, iso=plan.iso_name)


def planned_exports(plan: BuildPlan, reports: dict[str, StageReport]) -> dict[str, Export]:
    """Target name -> the stage output that goes there; later stages win."""
    exports: dict[str, Export] = {}
    for name, spec in stage_specs().items():
        report = reports[name]
        for output in spec.outputs:
            if output.export and output.name in report.record.outputs:
                exports[_name(output.export, plan)] = Export(name, report.key, output.name,
                                                             report.record.outputs[output.name])
    return exports


def iso_sha256(plan: BuildPlan, reports: dict[str, StageReport], exports: dict[str, Export]) -> str:
    """The ISO that goes out must be the one the checksum stage verified."""
    verified = str(reports["checksum"].record.facts.get("sha256"))
    if exports[plan.iso_name].artifact.sha256 != verified:
        raise LiveorchError("the checksum stage verified a different ISO than the one to export")
    return verified


def export_files(plan: BuildPlan, reports: dict[str, StageReport], store: StoreReader, target: Path
                 ) -> tuple[str, list[dict[str, Any]]]:
    """Everything but the ISO, and the SBOM; returns the ISO's verified sha256 and what the
    image's dpkg database says about its packages (package-info.json, for the report)."""
    exports = planned_exports(plan, reports)
    sha256 = iso_sha256(plan, reports, exports)
    for name, item in sorted(exports.items()):
        if name != plan.iso_name:
            store.export(item.stage, item.key, item.output, target / name, item.artifact.sha256)
    return sha256, write_sbom(plan, reports, store, target, sha256)


def export_iso(plan: BuildPlan, reports: dict[str, StageReport], store: StoreReader, target: Path) -> Path:
    """The ISO, last: its presence means every other file is there."""
    iso = planned_exports(plan, reports)[plan.iso_name]
    store.export(iso.stage, iso.key, iso.output, target / plan.iso_name, iso.artifact.sha256)
    return target / plan.iso_name


def write_sbom(plan: BuildPlan, reports: dict[str, StageReport], store: StoreReader, target: Path,
               sha256: str) -> list[dict[str, Any]]:
    lock = json.loads((target / f"{plan.image_name}.lock").read_text())
    rootfs = reports["rootfs"]
    package_info = json.loads(store.read("rootfs", rootfs.key, PACKAGE_INFO) or b"[]")
    epoch = int(lock["source_date_epoch"])
    sbom = make_sbom(plan.image_name, plan.iso_name, sha256, epoch, package_info, lock)
    write_file_atomic(target / sbom_name(plan), json.dumps(sbom, indent=1) + "\n")
    return package_info
