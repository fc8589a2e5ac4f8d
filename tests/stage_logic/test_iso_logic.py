"""iso: the ISO tree, GRUB's core images, the EFI FAT image and xorriso's command line,
with options as the plan makes them for the bundled example."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from liveorch.stages import iso
from liveorch.stages.contract import StageRequest, Workspace
from liveorch.stages.contracts.iso import NETBOOT_LOADER, Firmware, IsoOptions
from liveorch.stages.grub_config import early_config, loopback_config, menu_config, netboot_early_config
from liveorch.stages.tools import StageError

SQUASHFS = b"hsqs fake squashfs image\n"
KERNEL = b"MZ fake kernel\n"
INITRD = b"070701 fake initrd\n"
INPUTS = {"squashfs": "squashfs-key", "initrd": "initrd-key"}


def iso_options(example_plan, firmware: Firmware) -> IsoOptions:
    return dataclasses.replace(example_plan.options["iso"], firmware=firmware)


def publish_inputs(publish, store: Path | None = None, squashfs: bytes = SQUASHFS) -> tuple[Path, Path]:
    squashfs_entry = publish("squashfs", {"LiveOS/squashfs.img": squashfs}, store=store)
    initrd_entry = publish("initrd", {"vmlinuz": KERNEL, "initrd.img": INITRD}, store=store)
    return squashfs_entry, initrd_entry


def marker_of(workspace: Workspace) -> str:
    (marker,) = [p.name for p in (workspace.tmp / "iso/boot/grub").glob("liveorch-*.id")]
    return marker


def run_iso(example_plan, publish, make_request, workspace, firmware: Firmware) -> tuple[StageRequest, object]:
    publish_inputs(publish)
    request = make_request("iso", iso_options(example_plan, firmware), INPUTS)
    return request, iso.execute(request, workspace)


@pytest.mark.parametrize("firmware", [Firmware.EFI, Firmware.BIOS])
def test_the_iso_tree_holds_the_menu_the_marker_and_the_loopback_config(
        example_plan, workspace, publish, make_request, commands, firmware) -> None:
    request, outcome = run_iso(example_plan, publish, make_request, workspace, firmware)
    options = request.options
    grub = workspace.tmp / "iso/boot/grub"

    assert (grub / "grub.cfg").read_text() == menu_config(options.menu)
    assert (grub / "loopback.cfg").read_text() == loopback_config(options.menu)
    marker = marker_of(workspace)
    assert re.fullmatch(r"liveorch-[0-9a-f]{16}\.id", marker)
    assert (grub / marker).read_text() == "BOOKWORM_LIVE\n"
    early = (workspace.tmp / "grub/early.cfg").read_text()
    assert early == early_config(marker)
    assert f"search --no-floppy --set=root --file /boot/grub/{marker}\n" in early
    assert outcome.facts["marker"] == marker
    assert outcome.facts["secure_boot"] is False
    assert outcome.tools == {name: commands.version for name in (
        "xorriso", "grub-common", "grub-pc-bin", "grub-efi-amd64-bin", "mtools", "dosfstools")}


def test_efi_builds_both_core_images_and_the_fat_image(example_plan, workspace, publish, make_request, commands,
                                                       epoch) -> None:
    _, outcome = run_iso(example_plan, publish, make_request, workspace, Firmware.EFI)
    grub_work, grub = workspace.tmp / "grub", workspace.tmp / "iso/boot/grub"
    early = str(grub_work / "early.cfg")

    assert [commands.tool(argv) for argv in commands.argvs] == [
        "grub-mkimage", "grub-mkimage", "mkfs.fat", "mcopy", "xorriso"]
    bios, efi = commands.tool_calls("grub-mkimage")
    assert bios == ["grub-mkimage", "--format", "i386-pc-eltorito", "--prefix", "/boot/grub", "--config", early,
                    "--output", str(grub / "i386-pc/eltorito.img"), *iso.BIOS_MODULES]
    assert efi == ["grub-mkimage", "--format", "x86_64-efi", "--prefix", "/boot/grub", "--config", early,
                   "--output", str(grub_work / "BOOTX64.EFI"), *iso.EFI_MODULES]
    assert {"biosdisk", "iso9660", "search_fs_file", "configfile", "linux"} <= set(bios)
    assert {"efi_gop", "iso9660", "search_fs_file", "configfile", "linux"} <= set(efi)
    assert "biosdisk" not in efi

    serial = marker_of(workspace).removeprefix("liveorch-")[:8].upper()
    assert commands.tool_calls("mkfs.fat") == [
        ["mkfs.fat", "-C", "--invariant", "-i", serial, "-n", "EFIBOOT", str(grub / "efi.img"), "2048"]]
    efitree = grub_work / "efitree"
    assert commands.tool_calls("mcopy") == [["mcopy", "-s", "-m", "-i", str(grub / "efi.img"), str(efitree / "EFI"),
                                             "::/"]]
    loader = efitree / "EFI/BOOT/BOOTX64.EFI"
    assert loader.read_bytes() == b"fake grub core x86_64-efi\n"
    assert {p.lstat().st_mtime for p in efitree.rglob("*")} == {epoch}
    assert outcome.facts["efi_partition"] == ["EFI/BOOT/BOOTX64.EFI"]


def test_the_fat_image_honours_efifatimagesize(example_plan, workspace, publish, make_request, commands) -> None:
    publish_inputs(publish)
    options = dataclasses.replace(iso_options(example_plan, Firmware.EFI), efifatimagesize=20)
    iso.execute(make_request("iso", options, INPUTS), workspace)

    (mkfs,) = commands.tool_calls("mkfs.fat")
    assert mkfs[-1] == str(20 * 1024)


def test_bios_builds_only_the_el_torito_core_image(example_plan, workspace, publish, make_request, commands) -> None:
    _, outcome = run_iso(example_plan, publish, make_request, workspace, Firmware.BIOS)

    assert [commands.tool(argv) for argv in commands.argvs] == ["grub-mkimage", "xorriso"]
    (core,) = commands.tool_calls("grub-mkimage")
    assert core[core.index("--format") + 1] == "i386-pc-eltorito"
    assert not (workspace.tmp / "iso/boot/grub/efi.img").exists()
    assert outcome.facts["efi_partition"] == []
    (xorriso,) = commands.tool_calls("xorriso")
    assert "-eltorito-alt-boot" not in xorriso and "--efi-boot" not in xorriso


@pytest.mark.parametrize("firmware", [Firmware.EFI, Firmware.BIOS])
def test_xorriso_gets_the_identity_and_grafts_the_inputs(example_plan, workspace, publish, make_request, commands,
                                                         firmware) -> None:
    squashfs_entry, initrd_entry = publish_inputs(publish)
    options = dataclasses.replace(iso_options(example_plan, firmware), volid="UNIT_VOLID",
                                  application_id="unit-app", publisher="Unit Publisher")
    iso.execute(make_request("iso", options, INPUTS), workspace)

    (argv,) = commands.tool_calls("xorriso")
    assert argv[:3] == ["xorriso", "-as", "mkisofs"]
    identity = argv[argv.index("-volid"): argv.index("-volid") + 10]
    assert identity == ["-volid", "UNIT_VOLID", "-appid", "unit-app", "-publisher", "Unit Publisher",
                        "-preparer", "liveorch", "-sysid", "LINUX"]
    assert "--modification-date=2023111422132000" in argv
    assert argv[argv.index("--set_all_file_dates") + 1] == "=1700000000"
    assert argv[argv.index("-b") + 1] == "boot/grub/i386-pc/eltorito.img"
    assert argv[argv.index("--grub2-mbr") + 1] == "/usr/lib/grub/i386-pc/boot_hybrid.img"
    assert argv[argv.index("-output"):] == [
        "-output", str(workspace.out / "image.iso"),
        "-graft-points",
        f"/={workspace.tmp / 'iso'}",
        f"/LiveOS/squashfs.img={squashfs_entry / 'LiveOS/squashfs.img'}",
        f"/boot/x86_64/loader/initrd={initrd_entry / 'initrd.img'}",
        f"/boot/x86_64/loader/linux={initrd_entry / 'vmlinuz'}",
    ]
    efi = ["-eltorito-alt-boot", "--efi-boot", "boot/grub/efi.img", "-efi-boot-part", "--efi-boot-image",
           "--protective-msdos-label"]
    start = argv.index("--grub2-boot-info") + 1
    assert argv[start: argv.index("-output")] == (efi if firmware is Firmware.EFI else [])


def test_the_marker_is_a_pure_function_of_the_request(example_plan, new_workspace, make_request, publish,
                                                      commands) -> None:
    markers = []
    for name in ("first", "second"):
        workspace = new_workspace(name)
        publish_inputs(publish, store=workspace.store)
        outcome = iso.execute(make_request("iso", iso_options(example_plan, Firmware.EFI), INPUTS), workspace)
        markers.append(outcome.facts["marker"])
        assert marker_of(workspace) == outcome.facts["marker"]
    assert markers[0] == markers[1]
    mkfs = commands.tool_calls("mkfs.fat")
    assert mkfs[0][mkfs[0].index("-i") + 1] == mkfs[1][mkfs[1].index("-i") + 1]  # same FAT serial too

    # ...and a function of everything in it: other input bytes, epoch or options give another medium.
    other_bytes = new_workspace("other-bytes")
    publish_inputs(publish, store=other_bytes.store, squashfs=SQUASHFS + b"changed")
    other_epoch = new_workspace("other-epoch")
    publish_inputs(publish, store=other_epoch.store)
    other_options = new_workspace("other-options")
    publish_inputs(publish, store=other_options.store)
    others = [
        iso.execute(make_request("iso", iso_options(example_plan, Firmware.EFI), INPUTS), other_bytes),
        iso.execute(make_request("iso", iso_options(example_plan, Firmware.EFI), INPUTS, epoch=1), other_epoch),
        iso.execute(make_request("iso", iso_options(example_plan, Firmware.BIOS), INPUTS), other_options),
    ]
    assert len({markers[0], *(o.facts["marker"] for o in others)}) == 4


def test_the_marker_ignores_the_request_key(example_plan, new_workspace, make_request, publish, commands) -> None:
    """The key covers the stage's code as well; the medium must not change with a comment."""
    markers = []
    for name in ("a", "b"):
        workspace = new_workspace(name)
        publish_inputs(publish, store=workspace.store)
        request = make_request("iso", iso_options(example_plan, Firmware.BIOS), INPUTS, key=f"key-{name}")
        markers.append(iso.execute(request, workspace).facts["marker"])
    assert markers[0] == markers[1]


@pytest.mark.parametrize("firmware", [Firmware.EFI, Firmware.BIOS])
def test_netboot_loader_is_a_grub_efi_image_beside_the_iso(example_plan, workspace, publish, make_request, commands,
                                                           firmware) -> None:
    """--pxe: whatever the ISO's firmware, UEFI network clients get a GRUB of their own."""
    publish_inputs(publish)
    options = dataclasses.replace(iso_options(example_plan, firmware), netboot_loader=True)
    iso.execute(make_request("iso", options, INPUTS), workspace)

    early = workspace.tmp / "grub/netboot.cfg"
    assert commands.tool_calls("grub-mkimage")[-1] == [
        "grub-mkimage", "--format", "x86_64-efi", "--prefix", "", "--config", str(early),
        "--output", str(workspace.out / NETBOOT_LOADER), *iso.NETBOOT_MODULES]
    assert {"efinet", "tftp", "linux", "normal", "configfile", "echo"} <= set(iso.NETBOOT_MODULES)
    assert (workspace.out / NETBOOT_LOADER).read_bytes() == b"fake grub core x86_64-efi\n"
    assert early.read_text() == netboot_early_config()
    assert "configfile $cmdpath/grub.cfg\n" in early.read_text(), "grub.cfg beside the loader on the TFTP server"
    assert NETBOOT_LOADER not in " ".join(commands.tool_calls("xorriso")[0]), "not on the medium"


def test_without_pxe_there_is_no_netboot_loader(example_plan, workspace, publish, make_request, commands) -> None:
    run_iso(example_plan, publish, make_request, workspace, Firmware.EFI)
    assert sorted(p.name for p in workspace.out.iterdir()) == ["image.iso"]
    assert not any("--prefix" in argv and argv[argv.index("--prefix") + 1] == ""
                   for argv in commands.tool_calls("grub-mkimage"))


def test_the_netboot_loader_leaves_the_medium_as_it_was(example_plan, new_workspace, make_request, publish,
                                                        commands) -> None:
    """A --pxe build's ISO is the very ISO of the same build without --pxe: same marker and
    FAT serial, so the same bytes."""
    markers = []
    for wanted in (False, True):
        workspace = new_workspace(f"netboot-{wanted}")
        publish_inputs(publish, store=workspace.store)
        options = dataclasses.replace(iso_options(example_plan, Firmware.EFI), netboot_loader=wanted)
        markers.append(iso.execute(make_request("iso", options, INPUTS), workspace).facts["marker"])
    assert markers[0] == markers[1]
    first, second = commands.tool_calls("mkfs.fat")
    assert first[first.index("-i") + 1] == second[second.index("-i") + 1]


def test_uefi_without_the_signed_chain_is_a_stage_error(example_plan, workspace, publish, make_request,
                                                        commands) -> None:
    assert example_plan.options["iso"].firmware is Firmware.UEFI  # the example asks for Secure Boot
    publish_inputs(publish)
    with pytest.raises(StageError, match="delivered no signed shim/GRUB"):
        iso.execute(make_request("iso", example_plan.options["iso"], INPUTS), workspace)
    assert commands.tool_calls("xorriso") == []

