"""What a build leaves besides the ISO: the report, the SBOM and KIWI's files."""

from __future__ import annotations

import json

import pytest
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from liveorch.orchestrator.report import BuildReport
from liveorch.orchestrator.stage_specs import stage_names
from liveorch.stages.contracts.iso import ISO_IMAGE

pytestmark = pytest.mark.slow
BASENAME = "bookworm-live.x86_64-1.0.0"


def test_sbom_is_valid_spdx_and_lists_every_installed_package(example_build: BuildReport) -> None:
    target = example_build.iso.parent
    document = parse_file(str(target / f"{BASENAME}.spdx.json"))
    assert validate_full_spdx_document(document) == []
    installed = {line.split("|")[0] for line in (target / f"{BASENAME}.packages").read_text().splitlines()}
    listed = {p.name for p in document.packages} - {example_build.iso.name}
    assert listed == installed
    declared = [p.license_declared for p in document.packages if p.name == "bash"]
    assert declared and "GPL-3.0-or-later" in str(declared[0])


def test_report_records_inputs_and_every_stage(example_build: BuildReport) -> None:
    report = json.loads((example_build.iso.parent / f"{BASENAME}.report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == list(stage_names())
    assert report["iso"]["sha256"] == example_build.sha256
    assert report["source_date_epoch"] > 1_600_000_000
    assert all(s["image"].startswith("sha256:") and len(s["key"]) == 64 for s in report["stages"])
    iso_stage = next(s for s in report["stages"] if s["stage"] == "iso")
    assert "xorriso" in iso_stage["tools"]
    # The example has a media check: the checksum stage writes the final ISO (MD5 implanted).
    checksum_stage = next(s for s in report["stages"] if s["stage"] == "checksum")
    assert checksum_stage["outputs"][ISO_IMAGE]["sha256"] == example_build.sha256
    assert iso_stage["outputs"][ISO_IMAGE]["sha256"] != example_build.sha256
    assert all(len(s["code"]) == 64 for s in report["stages"]), "each stage's code hash is recorded"
    assert report["limits"]["memory"] > 0 and report["limits"]["pids"] > 0
    assert report["trust"] == {"warnings": [], "unsigned_repositories": []}


def test_report_html_pictures_the_build(example_build: BuildReport) -> None:
    """report.html beside report.json, and what report.json records for it: when each stage
    ran, the largest packages, the boot menu and the checks."""
    target = example_build.iso.parent
    report = json.loads((target / f"{BASENAME}.report.json").read_text())
    assert all(0 <= s["started"] <= s["finished"] <= report["seconds"] for s in report["stages"])
    largest = report["installed_size"]["largest"]
    assert largest[0]["name"].startswith("linux-image-") and report["installed_size"]["total"] > largest[0]["size"]
    assert report["boot"]["entries"] and report["boot"]["firmware"] == "uefi"
    assert {c["check"] for c in report["checks"]} >= {"sha256", "media check", "dpkg --verify"}
    iso_stage = next(s for s in report["stages"] if s["stage"] == "iso")
    assert iso_stage["facts"]["efi_image_size"] > 0
    page = (target / f"{BASENAME}.report.html").read_text()
    for stage in stage_names():
        assert f'data-stage="{stage}"' in page, stage
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_verified_file_is_written(example_build: BuildReport) -> None:
    verified = example_build.iso.parent / f"{BASENAME}.verified"
    assert verified.is_file()
    text = verified.read_text()
    assert text.startswith("# dpkg --verify of the image's root")
    for line in text.splitlines():
        assert line.startswith("#") or line.split()[-1].startswith("/"), line


def test_no_stage_container_had_privileges(example_build: BuildReport) -> None:
    """Every stage container as the engine created it: never privileged, no capability
    added, no device, no network but for resolve, no-new-privileges, the volume only."""
    report = json.loads((example_build.iso.parent / f"{BASENAME}.report.json").read_text())
    seen = {s["stage"]: s["container"] for s in report["stages"] if s["container"] is not None}
    assert set(seen) == set(stage_names()), "the example build runs every stage"
    for stage, container in seen.items():
        assert container["privileged"] is False, stage
        assert container["cap_add"] == [], stage
        assert container["devices"] == [], stage
        assert "no-new-privileges" in container["security_opt"], stage
        assert container["network"] == ("none" if stage != "resolve" else "bridge"), stage
        # The store read-only, the stage's own scratch volume read-write, nothing else.
        modes = {m.split(":")[1]: m.split(":")[2] for m in container["mounts"]}
        assert modes == {"/store": "ro", "/work": "rw"}, (stage, container)
        assert container["memory"] and container["pids_limit"], stage
    for stage in ("squashfs", "iso", "checksum"):
        assert seen[stage]["user"] == "1000", stage
        assert "CHOWN" in seen[stage]["cap_drop"] and "SYS_CHROOT" in seen[stage]["cap_drop"]
