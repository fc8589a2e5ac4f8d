"""Each stage image run on real inputs: what it writes, that it repeats itself byte for byte,
and that its failures come back as one clear line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.overrides import Overrides
from liveorch.orchestrator.pipeline import StageReport
from liveorch.orchestrator.plan import BuildPlan, make_plan
from liveorch.orchestrator.store import Store
from liveorch.stages.contract import ContractError, Record, decode
from liveorch.stages.contracts.checksum import SHA256_FILE
from liveorch.stages.contracts.iso import ISO_IMAGE, Firmware
from liveorch.stages.contracts.resolve import Lock

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookworm-live" / "config.xml"


def _error(logs: str) -> str:
    lines = [ln for ln in logs.splitlines() if ln.startswith("liveorch-stage-error: ")]
    assert lines, logs[-2000:]
    return lines[-1]


def test_resolve_names_an_unknown_package_and_the_repositories(run_stage, example_plan: BuildPlan) -> None:
    options = replace(example_plan.options["resolve"], packages=("linux-image-amd64", "no-such-package-liveorch"))
    outcome = run_stage("resolve", options)
    assert outcome.exit_code == 1 and outcome.record is None
    assert "no-such-package-liveorch" in _error(outcome.logs)
    assert "deb.debian.org/debian bookworm" in _error(outcome.logs)


def test_resolve_with_the_lock_reproduces_the_lock(run_stage, example_plan: BuildPlan, store: Store,
                                                   example_reports: dict[str, StageReport]) -> None:
    lock = decode(Lock, json.loads(store.read("resolve", example_reports["resolve"].key, "lock.json") or b""))
    outcome = run_stage("resolve", replace(example_plan.options["resolve"], lock=lock))
    assert outcome.exit_code == 0, outcome.logs[-2000:]
    assert outcome.record is not None
    assert outcome.record.digest() == example_reports["resolve"].record.digest()
    assert "from the package pool" in outcome.logs


def test_a_request_that_does_not_fit_the_contract_is_refused(run_stage, example_plan: BuildPlan) -> None:
    """The stage's own copy of the contract checks the request before anything runs."""
    with pytest.raises(ContractError):
        decode(type(example_plan.options["squashfs"]), {"compression": "brotli"})
    outcome = run_stage("squashfs", replace(example_plan.options["squashfs"], compression="brotli"))
    assert outcome.exit_code == 1
    assert "options.compression: 'brotli' is not one of" in _error(outcome.logs)


def test_rootfs_configures_the_root(store: Store, example_reports: dict[str, StageReport]) -> None:
    lock = json.loads(store.read("resolve", example_reports["resolve"].key, "lock.json") or b"")
    packages = (store.read("rootfs", example_reports["rootfs"].key, "packages") or b"").decode().splitlines()
    assert sorted(p["name"] for p in lock["packages"]) == sorted(line.split("|")[0] for line in packages)
    assert example_reports["rootfs"].record.outputs["root.tar"].size > 100 << 20


def test_squashfs_is_repeatable_and_unprivileged(run_stage, example_plan: BuildPlan,
                                                 example_results: dict[str, Record]) -> None:
    outcome = run_stage("squashfs", example_plan.options["squashfs"])
    assert outcome.exit_code == 0, outcome.logs[-2000:]
    assert outcome.record is not None
    assert outcome.record.outputs == example_results["squashfs"].outputs


@pytest.mark.parametrize("attrs", [("filesystem=ext4",), ("filesystem=erofs", "erofscompression=lz4hc,12")],
                         ids=["ext4", "erofs"])
def test_root_images_are_repeatable_and_unprivileged(run_stage, example_variant, attrs: tuple[str, ...]) -> None:
    """mke2fs -d and mkfs.erofs --tar as an unprivileged user give the bytes the variant build
    published (tests/e2e/test_root_layouts.py boots them)."""
    variant = next(s for s in example_variant(*attrs).stages if s.stage == "squashfs")
    options = make_plan(parse_description(EXAMPLE, overrides=Overrides(type_attrs=list(attrs)))).options["squashfs"]
    outcome = run_stage("squashfs", options)
    assert outcome.exit_code == 0, outcome.logs[-2000:]
    assert outcome.record is not None
    assert outcome.record.outputs == variant.record.outputs
    assert outcome.record.facts["uuid"] == variant.record.facts["uuid"]


def test_initrd_is_repeatable_whatever_its_thread_budget(run_stage, store: Store, example_plan: BuildPlan,
                                                         example_results: dict[str, Record]) -> None:
    """Two threads give the bytes the example build's one thread gave; the initramfs is zstd,
    the format the example's kernel unpacks best, compressed by the stage, not dracut."""
    outcome = run_stage("initrd", example_plan.options["initrd"], threads=2)
    assert outcome.exit_code == 0, outcome.logs[-2000:]
    assert outcome.record is not None
    assert outcome.record.outputs == example_results["initrd"].outputs
    assert outcome.record.facts["kernel"].endswith("-amd64")
    assert (store.read("initrd", outcome.key, "initrd.img") or b"")[:4] == bytes.fromhex("28b52ffd")
    assert "zstd" in outcome.record.tools


def test_iso_is_repeatable(run_stage, example_plan: BuildPlan, example_results: dict[str, Record]) -> None:
    outcome = run_stage("iso", example_plan.options["iso"])
    assert outcome.exit_code == 0, outcome.logs[-2000:]
    assert outcome.record is not None
    assert outcome.record.outputs == example_results["iso"].outputs


def test_uefi_iso_carries_the_images_own_signed_chain(example_results: dict[str, Record]) -> None:
    """firmware="uefi": the initrd stage hands on shim, GRUB and MokManager from the image,
    with their packages' versions; the iso stage puts shim first on the EFI partition, and the
    signed GRUB's config beside it."""
    initrd = example_results["initrd"]
    assert {"efi/shim.efi", "efi/grub.efi", "efi/mm.efi"} <= set(initrd.outputs)
    assert initrd.outputs["efi/shim.efi"].size > 500 << 10
    assert {"shim-signed (image)", "shim-helpers-amd64-signed (image)", "grub-efi-amd64-signed (image)"} <= set(
        initrd.tools)
    iso = example_results["iso"]
    assert iso.facts["secure_boot"] is True
    assert iso.facts["efi_partition"] == ["EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/grubx64.efi", "EFI/BOOT/mmx64.efi",
                                          "boot/grub/x86_64-efi/grub.cfg"]


def test_iso_with_plain_efi_uses_its_own_grub(run_stage, example_plan: BuildPlan) -> None:
    outcome = run_stage("iso", replace(example_plan.options["iso"], firmware=Firmware.EFI))
    assert outcome.exit_code == 0, outcome.logs[-2000:]
    assert outcome.record is not None
    assert outcome.record.facts["secure_boot"] is False
    assert outcome.record.facts["efi_partition"] == ["EFI/BOOT/BOOTX64.EFI"]
    assert "grub-mkimage --format x86_64-efi" in outcome.logs
    assert "EFI partition: EFI/BOOT/BOOTX64.EFI\n" in outcome.logs


def test_checksum_verifies(run_stage, example_plan: BuildPlan, example_results: dict[str, Record]) -> None:
    good = run_stage("checksum", example_plan.options["checksum"])
    assert good.exit_code == 0, good.logs[-2000:]
    assert good.record is not None
    # The example asks for a media check: the stage writes the ISO with its MD5 implanted,
    # the same bytes every time, and different from the iso stage's.
    assert good.record.outputs == example_results["checksum"].outputs
    assert good.record.facts["sha256"] == example_results["checksum"].outputs[ISO_IMAGE].sha256
    assert good.record.facts["sha256"] != example_results["iso"].outputs[ISO_IMAGE].sha256
    assert SHA256_FILE in good.record.outputs
