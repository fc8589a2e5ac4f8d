"""Each stage image run on real inputs: what it writes, that it repeats itself byte for byte,
and that its failures come back as one clear line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from liveorch.stages.contract import StageResult

pytestmark = pytest.mark.slow


def test_resolve_names_an_unknown_package_and_the_repositories(run_stage, example_options) -> None:
    options = {**example_options["resolve"], "packages": ["linux-image-amd64", "no-such-package-liveorch"]}
    outcome = run_stage("resolve", options)
    assert outcome.exit_code == 1
    error = [ln for ln in outcome.logs.splitlines() if ln.startswith("liveorch-stage-error: ")]
    assert error and "no-such-package-liveorch" in error[-1]
    assert "deb.debian.org/debian bookworm" in error[-1]
    assert outcome.result is None


def test_resolve_with_the_lock_reproduces_the_lock(run_stage, example_options, example_results, volume) -> None:
    lock = json.loads(volume.read(_path("resolve", example_results["resolve"], "lock.json")))
    outcome = run_stage("resolve", {**example_options["resolve"], "lock": lock})
    assert outcome.exit_code == 0, outcome.logs[-2000:]
    assert outcome.result is not None
    assert outcome.result.digest() == example_results["resolve"].digest()
    assert "from the package pool" in outcome.logs


def test_rootfs_configures_the_root(volume, example_results) -> None:
    lock = json.loads(volume.read(_path("resolve", example_results["resolve"], "lock.json")))
    packages = volume.read(_path("rootfs", example_results["rootfs"], "packages")).decode().splitlines()
    assert sorted(p["name"] for p in lock["packages"]) == sorted(line.split("|")[0] for line in packages)
    assert "root.tar" in example_results["rootfs"].outputs
    assert example_results["rootfs"].outputs["root.tar"].size > 100 << 20


def test_squashfs_is_repeatable_and_unprivileged(run_stage, example_options, example_results) -> None:
    outcome = run_stage("squashfs", example_options["squashfs"], inputs=("rootfs",))
    assert outcome.exit_code == 0, outcome.logs[-2000:]
    assert outcome.result is not None
    assert outcome.result.outputs == example_results["squashfs"].outputs


def test_initrd_is_repeatable(run_stage, example_options, example_results) -> None:
    outcome = run_stage("initrd", example_options["initrd"], inputs=("rootfs",))
    assert outcome.exit_code == 0, outcome.logs[-2000:]
    assert outcome.result is not None
    assert outcome.result.outputs == example_results["initrd"].outputs
    assert outcome.result.facts["kernel"].endswith("-amd64")


def test_iso_is_repeatable(run_stage, example_options, example_results) -> None:
    outcome = run_stage("iso", example_options["iso"], inputs=("squashfs", "initrd"))
    assert outcome.exit_code == 0, outcome.logs[-2000:]
    assert outcome.result is not None
    assert outcome.result.outputs == example_results["iso"].outputs


def test_uefi_iso_carries_the_images_own_signed_chain(example_results) -> None:
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


def test_iso_with_plain_efi_uses_its_own_grub(run_stage, example_options, example_results) -> None:
    outcome = run_stage("iso", {**example_options["iso"], "firmware": "efi"}, inputs=("squashfs", "initrd"))
    assert outcome.exit_code == 0, outcome.logs[-2000:]
    assert outcome.result is not None
    assert outcome.result.facts["secure_boot"] is False
    assert outcome.result.facts["efi_partition"] == ["EFI/BOOT/BOOTX64.EFI"]
    assert "grub-mkimage --format x86_64-efi" in outcome.logs
    assert "EFI partition: EFI/BOOT/BOOTX64.EFI\n" in outcome.logs


def test_iso_rejects_a_bad_volume_id(run_stage, example_options) -> None:
    outcome = run_stage("iso", {**example_options["iso"], "volid": "X" * 33}, inputs=("squashfs", "initrd"))
    assert outcome.exit_code == 1
    assert "liveorch-stage-error: volid" in outcome.logs


def test_checksum_verifies_and_names_a_missing_iso(run_stage, example_options, example_results) -> None:
    good = run_stage("checksum", example_options["checksum"], inputs=("iso",))
    assert good.exit_code == 0, good.logs[-2000:]
    assert good.result is not None
    iso_name = example_options["checksum"]["iso_name"]
    # The example asks for a media check: the stage writes the ISO with its MD5 implanted,
    # the same bytes every time, and different from the iso stage's.
    assert good.result.outputs == example_results["checksum"].outputs
    assert good.result.facts["sha256"] == example_results["checksum"].outputs[iso_name].sha256
    assert good.result.facts["sha256"] != example_results["iso"].outputs[iso_name].sha256
    missing = run_stage("checksum", {"iso_name": "other.iso"}, inputs=("iso",))
    assert missing.exit_code == 1
    assert "liveorch-stage-error: the iso stage left no other.iso" in missing.logs


def _path(stage: str, result: StageResult, name: str) -> Any:
    from liveorch.stages.contract import stage_dir

    return stage_dir(stage, result.key) / name
