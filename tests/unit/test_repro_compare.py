"""verify-repro's comparison names the first stage that differs and its differing files."""

from __future__ import annotations

from liveorch.orchestrator.pipeline import StageReport
from liveorch.orchestrator.repro import compare
from liveorch.orchestrator.stage_specs import stage_names
from liveorch.stages.contract import Artifact, Record


def _reports(overrides: dict[str, dict[str, str]]) -> dict[str, StageReport]:
    reports = {}
    for stage in stage_names():
        outputs = {"out.bin": Artifact(1, "a" * 64), **{n: Artifact(1, h) for n, h in overrides.get(stage, {}).items()}}
        reports[stage] = StageReport(stage, "k", False, 1.0, Record(stage, "k", outputs, {}, {}, 1.0))
    return reports


def test_identical_builds_compare_equal() -> None:
    assert compare(_reports({}), _reports({})) == (None, [])


def test_first_differing_stage_and_files_are_named() -> None:
    first = _reports({"squashfs": {"LiveOS/squashfs.img": "b" * 64}, "iso": {"x.iso": "c" * 64}})
    second = _reports({"squashfs": {"LiveOS/squashfs.img": "d" * 64}, "iso": {"x.iso": "e" * 64}})
    assert compare(first, second) == ("squashfs", ["LiveOS/squashfs.img"])


def test_a_missing_output_counts_as_a_difference() -> None:
    assert compare(_reports({"rootfs": {"packages": "f" * 64}}), _reports({})) == ("rootfs", ["packages"])
