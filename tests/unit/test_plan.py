"""make_plan: KIWI naming, live boot packages, default volid, stage options."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from liveorch.orchestrator.description import Description, parse_description
from liveorch.orchestrator.errors import DescriptionError
from liveorch.orchestrator.plan import LIVE_BOOT_PACKAGES, BuildPlan, default_volid, make_plan, secure_boot_packages
from liveorch.stages.contract import STAGES

PACKAGES_WITHOUT_DRACUT = """<packages type="image">
        <package name="linux-image-amd64"/>
        <package name="systemd-sysv"/>
    </packages>"""


@pytest.fixture
def example(example_config: Path) -> Description:
    return parse_description(example_config)


@pytest.fixture
def example_plan(example: Description) -> BuildPlan:
    return make_plan(example)


def test_kiwi_iso_name(example_plan: BuildPlan) -> None:
    assert example_plan.image_name == "bookworm-live"
    assert example_plan.iso_name == "bookworm-live.x86_64-1.0.0.iso"
    assert example_plan.basename == "bookworm-live.x86_64-1.0.0"
    assert example_plan.options["iso"]["iso_name"] == example_plan.iso_name
    assert example_plan.options["checksum"] == {"iso_name": example_plan.iso_name, "mediacheck": True}


def test_iso_name_uses_name_and_version(write_description) -> None:
    plan = make_plan(parse_description(write_description(name="My_Live", version="4.5.6")))
    assert plan.iso_name == "My_Live.x86_64-4.5.6.iso"


def test_missing_version_defaults_to_1_0_0(write_description) -> None:
    path = write_description(version="")
    assert make_plan(parse_description(path)).iso_name == "unit-live.x86_64-1.0.0.iso"


def test_options_for_every_stage(example_plan: BuildPlan) -> None:
    assert set(example_plan.options) == set(STAGES)


def test_example_needs_no_added_packages(example_plan: BuildPlan) -> None:
    assert example_plan.notes == []
    packages = example_plan.options["resolve"]["packages"]
    assert packages.count("dracut") == 1
    assert packages.count("dracut-live") == 1


def test_dracut_and_dracut_live_added_with_notes(write_description) -> None:
    plan = make_plan(parse_description(write_description(packages=PACKAGES_WITHOUT_DRACUT)))
    assert plan.options["resolve"]["packages"] == ["linux-image-amd64", "systemd-sysv", "dracut", "dracut-live"]
    for package in LIVE_BOOT_PACKAGES:
        assert any(note.startswith(f"added {package}:") for note in plan.notes), plan.notes
    assert len(plan.notes) == 2


def test_only_the_missing_live_package_is_added(write_description) -> None:
    packages = """<packages type="image">
        <package name="linux-image-amd64"/>
        <package name="dracut"/>
    </packages>"""
    plan = make_plan(parse_description(write_description(packages=packages)))
    assert plan.options["resolve"]["packages"] == ["linux-image-amd64", "dracut", "dracut-live"]
    assert len(plan.notes) == 1
    assert plan.notes[0].startswith("added dracut-live:")


def test_dracut_kiwi_live_dropped_with_note(write_description) -> None:
    packages = """<packages type="image">
        <package name="linux-image-amd64"/>
        <package name="dracut-kiwi-live"/>
        <package name="dracut"/>
        <package name="dracut-live"/>
    </packages>"""
    description = parse_description(write_description(packages=packages))
    assert "dracut-kiwi-live" in description.packages
    plan = make_plan(description)
    assert "dracut-kiwi-live" not in plan.options["resolve"]["packages"]
    assert plan.options["resolve"]["packages"] == ["linux-image-amd64", "dracut", "dracut-live"]
    assert len(plan.notes) == 1
    assert "dracut-kiwi-live" in plan.notes[0]
    assert description.packages == ["linux-image-amd64", "dracut-kiwi-live", "dracut", "dracut-live"]  # untouched


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("bookworm-live", "BOOKWORM_LIVE"),
        ("my.image+v2", "MY_IMAGE_V2"),
        ("Live_1", "LIVE_1"),
        ("a" * 40, "A" * 32),
    ],
)
def test_default_volid(name: str, expected: str) -> None:
    volid = default_volid(name)
    assert volid == expected
    assert re.fullmatch(r"[A-Z0-9_]{1,32}", volid)


def test_default_volid_used_when_type_has_none(write_description) -> None:
    name = "a-very-long-image-name.with.dots-and+plus"
    plan = make_plan(parse_description(write_description(name=name, type='<type image="iso"/>')))
    volid = plan.options["iso"]["volid"]
    assert volid == "A_VERY_LONG_IMAGE_NAME_WITH_DOTS"
    assert re.fullmatch(r"[A-Z0-9_]{1,32}", volid)


def test_type_volid_wins_over_default(example_plan: BuildPlan) -> None:
    assert example_plan.options["iso"]["volid"] == "BOOKWORM_LIVE"


def test_iso_stage_options(example_plan: BuildPlan) -> None:
    iso = example_plan.options["iso"]
    assert iso["timeout"] == 3
    assert iso["console"] == "serial"
    assert iso["kernelcmdline"] == "console=tty0 console=ttyS0,115200"
    assert iso["timeout_style"] == "menu"
    assert iso["firmware"] == "uefi"
    assert iso["flags"] == "dmsquash"
    assert iso["title"] == "Debian bookworm live (liveorch)"
    assert iso["publisher"] == "liveorch"
    assert iso["application_id"] == "bookworm-live"
    assert iso["efifatimagesize"] is None


def test_other_stage_options(example_plan: BuildPlan) -> None:
    assert example_plan.options["squashfs"] == {"compression": "zstd"}
    assert example_plan.options["initrd"] == {"dracut_modules": ["dmsquash-live"], "secure_boot": True}
    rootfs = example_plan.options["rootfs"]
    assert rootfs["suite"] == "bookworm"
    assert rootfs["hostname"] == "bookworm-live"
    assert (rootfs["locale"], rootfs["keytable"], rootfs["timezone"]) == ("en_US", "us", "UTC")
    assert rootfs["users"] == [{"name": "root", "password": "linux", "pwdformat": "plain", "home": "/root",
                                "shell": None, "groups": ["root"], "id": None, "realname": None}]


def test_resolve_options(example_plan: BuildPlan) -> None:
    resolve = example_plan.options["resolve"]
    assert resolve["architecture"] == "amd64"
    assert resolve["lock"] is None
    assert [(r["url"], r["suite"], r["components"], r["alias"], r["trusted"]) for r in resolve["repositories"]] == [
        ("http://deb.debian.org/debian", "bookworm", ["main"], "debian", False),
        ("http://deb.debian.org/debian", "bookworm-updates", ["main"], "debian-updates", False),
        ("http://deb.debian.org/debian-security", "bookworm-security", ["main"], "debian-security", False),
    ]


def test_lock_ends_up_in_resolve_options(example: Description) -> None:
    lock = {"packages": {"dracut": "059-4"}, "source_date_epoch": 1700000000}
    plan = make_plan(example, lock)
    assert plan.options["resolve"]["lock"] == lock
    assert plan.options["resolve"]["lock"] is lock
    assert all("lock" not in options for stage, options in plan.options.items() if stage != "resolve")


def test_overlay_flag_adds_a_note(corpus: Path) -> None:
    plan = make_plan(parse_description(corpus / "profiles" / "config.xml", profiles=("Other",)))
    assert plan.options["iso"]["flags"] == "overlay"
    assert plan.options["iso"]["firmware"] == "bios"
    assert any('flags="overlay"' in note for note in plan.notes)


def test_make_plan_is_repeatable(example: Description) -> None:
    assert make_plan(example).options == make_plan(example).options


def test_uefi_firmware_adds_the_signed_boot_chain(write_description) -> None:
    uefi_type = '<type image="iso" firmware="uefi" volid="UNIT_LIVE"/>'
    plan = make_plan(parse_description(write_description(type=uefi_type)))
    packages = plan.options["resolve"]["packages"]
    assert packages[-2:] == ["shim-signed", "grub-efi-amd64-signed"]
    assert [n for n in plan.notes if "Secure Boot" in n] == [
        'firmware="uefi": added shim-signed for the Secure Boot chain',
        'firmware="uefi": added grub-efi-amd64-signed for the Secure Boot chain',
    ]
    assert not [n for n in plan.notes if "no Secure Boot chain" in n]
    assert plan.options["initrd"]["secure_boot"] is True
    assert plan.options["iso"]["firmware"] == "uefi"


def test_efi_firmware_has_no_secure_boot_chain(write_description) -> None:
    plan = make_plan(parse_description(write_description()))
    assert plan.options["iso"]["firmware"] == "efi"
    assert plan.options["initrd"]["secure_boot"] is False
    assert not {"shim-signed", "grub-efi-amd64-signed"} & set(plan.options["resolve"]["packages"])


def test_example_lists_its_secure_boot_packages(example_plan: BuildPlan) -> None:
    assert example_plan.options["iso"]["firmware"] == "uefi"
    assert {"shim-signed", "grub-efi-amd64-signed"} <= set(example_plan.options["resolve"]["packages"])


def test_secure_boot_without_signed_packages_for_the_architecture_fails_clearly() -> None:
    assert secure_boot_packages("amd64") == ("shim-signed", "grub-efi-amd64-signed")
    with pytest.raises(DescriptionError, match=r'firmware="uefi" .* amd64 only, not riscv64') as caught:
        secure_boot_packages("riscv64")
    assert caught.value.hint == 'firmware="efi" builds a plain EFI boot'


OVERLAY_TYPE = """<type image="iso" primary="true" flags="overlay" firmware="efi" volid="UNIT_LIVE"
              hybridpersistent="{persistent}" hybridpersistent_filesystem="{fs}">
            <bootloader name="grub2" console="serial" timeout="5"/>
        </type>"""


def test_overlay_uses_liveorchs_module_and_no_dmsquash_packages(write_description) -> None:
    path = write_description(type=OVERLAY_TYPE.format(persistent="false", fs="ext4"), packages=PACKAGES_WITHOUT_DRACUT)
    plan = make_plan(parse_description(path))
    assert plan.options["initrd"]["dracut_modules"] == ["liveorch-live"]
    packages = plan.options["resolve"]["packages"]
    assert "dracut" in packages
    assert "dracut-live" not in packages
    assert not {"fdisk", "xfsprogs"} & set(packages)
    assert plan.options["iso"]["persistent_filesystem"] is None


@pytest.mark.parametrize("fs", ["ext4", "xfs"])
def test_persistence_brings_both_filesystems_and_sfdisk(write_description, fs: str) -> None:
    path = write_description(type=OVERLAY_TYPE.format(persistent="true", fs=fs), packages=PACKAGES_WITHOUT_DRACUT)
    plan = make_plan(parse_description(path))
    assert {"fdisk", "e2fsprogs", "xfsprogs"} <= set(plan.options["resolve"]["packages"])
    assert plan.options["iso"]["persistent_filesystem"] == fs


def test_persistence_with_dmsquash_is_a_note_not_a_failure(write_description) -> None:
    hybrid = OVERLAY_TYPE.format(persistent="true", fs="ext4").replace('flags="overlay"', 'flags="dmsquash"')
    plan = make_plan(parse_description(write_description(type=hybrid)))
    assert plan.options["initrd"]["dracut_modules"] == ["dmsquash-live"]
    assert any("hybridpersistent" in note and 'flags="overlay"' in note for note in plan.notes)
