"""orchestrator.live_boot: the kernel command line, the boot menu and the dracut modules,
decided once from the description, and what the plan hands on of them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from liveorch.orchestrator import live_boot
from liveorch.orchestrator.description import CowFilesystem, LiveFlags, LiveType, parse_description
from liveorch.orchestrator.plan import make_plan
from liveorch.orchestrator.pxe import NetworkImage
from liveorch.orchestrator.root_layout import RootLayout
from liveorch.stages.contracts.iso import BootMenu, MenuEntry, Terminal, TimeoutStyle
from liveorch.stages.contracts.squashfs import RootFilesystem

SERIAL = ["console=tty0", "console=ttyS0,115200"]
ROOT = "root=live:CDLABEL=TEST_LIVE"
DMSQUASH_WORDS = ["rd.live.image", "rd.live.overlay.overlayfs=1"]
URL = "http://10.0.2.2:8000/"


def live(**overrides: object) -> LiveType:
    return dataclasses.replace(LiveType(volid="TEST_LIVE"), **overrides)


def words(live_type: LiveType, root: str = ROOT, network: bool = False) -> list[str]:
    return live_boot.kernel_cmdline(live_type, root, network=network).split()


# --- root= for the medium -----------------------------------------------------------------

def test_medium_root_is_the_volume_label() -> None:
    assert live_boot.medium_root("TEST_LIVE", live()) == ROOT


def test_volid_with_spaces_stays_one_kernel_argument() -> None:
    root = live_boot.medium_root("MY LIVE 2", live())
    assert root == "root=live:CDLABEL=MY\\x20LIVE\\x202"
    assert len(root.split()) == 1
    assert [w for w in words(live(), root) if w.startswith("root=")] == [root]
    assert "LIVE" not in words(live(), root)


# --- the kernel command line --------------------------------------------------------------

def test_dmsquash_cmdline() -> None:
    assert live_boot.kernel_cmdline(live(), ROOT) == (
        "root=live:CDLABEL=TEST_LIVE rd.live.image rd.live.overlay.overlayfs=1 console=tty0 console=ttyS0,115200")


def test_default_console_added_when_description_has_none() -> None:
    cmdline = words(live(kernelcmdline="quiet splash"))
    assert cmdline == [ROOT, *DMSQUASH_WORDS, "quiet", "splash", *SERIAL]
    assert cmdline.count("console=tty0") == 1


def test_no_default_console_when_description_sets_one() -> None:
    cmdline = words(live(kernelcmdline="console=ttyS1,9600 quiet"))
    assert cmdline == [ROOT, *DMSQUASH_WORDS, "console=ttyS1,9600", "quiet"]
    assert "console=tty0" not in cmdline
    assert "console=ttyS0,115200" not in cmdline


def test_description_consoles_are_not_repeated() -> None:
    cmdline = words(live(kernelcmdline="console=tty0 console=ttyS0,115200"))
    assert cmdline == [ROOT, *DMSQUASH_WORDS, *SERIAL]


def test_overlay_cmdline_is_liveorchs_module_without_dmsquash_words() -> None:
    cmdline = words(live(flags=LiveFlags.OVERLAY))
    assert cmdline == [ROOT, *SERIAL]
    assert not [w for w in cmdline if w.startswith(("rd.live.image", "rd.live.overlay"))]


@pytest.mark.parametrize("filesystem", list(CowFilesystem))
def test_overlay_persistence_words_follow_the_filesystem(filesystem: CowFilesystem) -> None:
    cmdline = words(live(flags=LiveFlags.OVERLAY, hybridpersistent=True, hybridpersistent_filesystem=filesystem,
                         kernelcmdline="quiet"))
    assert cmdline == [ROOT, "rd.live.overlay.persistent", f"rd.live.overlay.cowfs={filesystem.value}", "quiet",
                       *SERIAL]


def test_persistence_words_only_for_overlay() -> None:
    cmdline = words(live(flags=LiveFlags.DMSQUASH, hybridpersistent=True))
    assert not [w for w in cmdline if w.startswith(("rd.live.overlay.persistent", "rd.live.overlay.cowfs"))]
    assert cmdline == [ROOT, *DMSQUASH_WORDS, *SERIAL]


def test_network_dmsquash_cmdline_fetches_the_image_with_dhcp() -> None:
    root = f"root=live:{URL}squashfs.img"
    assert live_boot.kernel_cmdline(live(kernelcmdline="console=tty0 console=ttyS0,115200"), root, network=True) == (
        "root=live:http://10.0.2.2:8000/squashfs.img rd.live.image rd.live.overlay.overlayfs=1 "
        "ip=dhcp rd.neednet=1 console=tty0 console=ttyS0,115200")


def test_network_overlay_cmdline_has_no_persistence() -> None:
    """Booted over the network there is no medium to put the write layer beside."""
    root = "root=live:https://boot.example/live/squashfs.img"
    overlay = live(flags=LiveFlags.OVERLAY, hybridpersistent=True, kernelcmdline="quiet")
    assert live_boot.kernel_cmdline(overlay, root, network=True) == (
        "root=live:https://boot.example/live/squashfs.img ip=dhcp rd.neednet=1 quiet "
        "console=tty0 console=ttyS0,115200")


# --- the boot menu --------------------------------------------------------------------------

@pytest.mark.parametrize(("console", "expected"), [
    ("serial", Terminal.SERIAL),
    ("console", Terminal.SCREEN),
    ("gfxterm", Terminal.SCREEN),
    ("", Terminal.BOTH),
    ("serial console", Terminal.BOTH),
])
def test_terminal_from_kiwis_console(console: str, expected: Terminal) -> None:
    assert live_boot.terminal(console) is expected


def test_menu_entries_default_and_failsafe() -> None:
    live_type = live(kernelcmdline="quiet", bootloader_console="serial", bootloader_timeout=7,
                     bootloader_timeout_style=TimeoutStyle.COUNTDOWN)
    menu = live_boot.boot_menu(live_type, "TEST_LIVE", "Test live")
    cmdline = live_boot.kernel_cmdline(live_type, ROOT)
    assert menu == BootMenu(
        terminal=Terminal.SERIAL,
        timeout=7,
        timeout_style=TimeoutStyle.COUNTDOWN,
        entries=(MenuEntry("Test live", cmdline),
                 MenuEntry("Test live (failsafe)", f"{cmdline} nomodeset noapic acpi=off")),
        loopback_cmdline=f"iso-scan/filename=${{iso_path}} {cmdline}",
    )
    assert cmdline == f"{ROOT} rd.live.image rd.live.overlay.overlayfs=1 quiet console=tty0 console=ttyS0,115200"


def test_menu_defaults_without_bootloader_settings() -> None:
    menu = live_boot.boot_menu(LiveType(), "X", "X")
    assert (menu.terminal, menu.timeout, menu.timeout_style) == (Terminal.BOTH, 10, TimeoutStyle.MENU)
    assert menu.entries[0].kernel_cmdline.split()[0] == "root=live:CDLABEL=X"


def test_mediacheck_adds_a_check_entry_only_when_asked() -> None:
    assert [e.title for e in live_boot.boot_menu(live(), "TEST_LIVE", "T").entries] == ["T", "T (failsafe)"]
    menu = live_boot.boot_menu(live(mediacheck=True), "TEST_LIVE", "T")
    assert [e.title for e in menu.entries] == ["T", "Check installation media", "T (failsafe)"]
    assert menu.entries[1].kernel_cmdline == f"{menu.entries[0].kernel_cmdline} rd.live.check"


def test_media_check_entry_speaks_each_modules_parameter() -> None:
    overlay = live_boot.boot_menu(live(flags=LiveFlags.OVERLAY, mediacheck=True), "TEST_LIVE", "T")
    dmsquash = live_boot.boot_menu(live(flags=LiveFlags.DMSQUASH, mediacheck=True), "TEST_LIVE", "T")
    assert overlay.entries[1].kernel_cmdline.split()[-1] == "mediacheck=1"
    assert "rd.live.check" not in overlay.entries[1].kernel_cmdline
    assert dmsquash.entries[1].kernel_cmdline.split()[-1] == "rd.live.check"
    assert "mediacheck=1" not in dmsquash.entries[1].kernel_cmdline


def test_menu_uses_the_medium_label_with_spaces_encoded() -> None:
    menu = live_boot.boot_menu(live(), "MY LIVE", "My live")
    for cmdline in [*(e.kernel_cmdline for e in menu.entries), menu.loopback_cmdline]:
        assert "root=live:CDLABEL=MY\\x20LIVE" in cmdline.split()


def test_loopback_cmdline_passes_the_iso_path_to_the_live_module() -> None:
    menu = live_boot.boot_menu(live(flags=LiveFlags.OVERLAY), "TEST_LIVE", "T")
    assert menu.loopback_cmdline.split() == ["iso-scan/filename=${iso_path}", ROOT, *SERIAL]


# --- dracut modules ---------------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "network", "expected"), [
    (LiveFlags.DMSQUASH, False, ("dmsquash-live",)),
    (LiveFlags.DMSQUASH, True, ("dmsquash-live", "livenet", "network-legacy")),
    (LiveFlags.OVERLAY, False, ("liveorch-live",)),
    (LiveFlags.OVERLAY, True, ("liveorch-live", "url-lib", "network-legacy")),
])
def test_dracut_modules(flags: LiveFlags, network: bool, expected: tuple[str, ...]) -> None:
    assert live_boot.dracut_modules(live(flags=flags), network) == expected


@pytest.mark.parametrize(("flags", "network", "expected"), [
    (LiveFlags.DMSQUASH, False, ()),
    (LiveFlags.DMSQUASH, True, ()),
    (LiveFlags.OVERLAY, False, ()),
    (LiveFlags.OVERLAY, True, ("aoe",)),
])
def test_initrd_drivers_add_aoe_only_to_the_overlay_network_initrd(flags: LiveFlags, network: bool,
                                                                    expected: tuple[str, ...]) -> None:
    """root=live:aoe: is liveorch's module's path: only its network initrd can reach a target."""
    assert live_boot.initrd_drivers(live(flags=flags), network) == expected


def test_initrd_drivers_keep_the_layout_drivers_first() -> None:
    erofs = live(flags=LiveFlags.DMSQUASH, layout=RootLayout(filesystem=RootFilesystem.EROFS))
    assert live_boot.initrd_drivers(erofs, network=True) == ("erofs",)


# --- through the plan ---------------------------------------------------------------------------

def test_example_menu_has_its_consoles_once(example_config: Path) -> None:
    plan = make_plan(parse_description(example_config))
    menu = plan.options["iso"].menu
    assert menu.entries[0] == MenuEntry(
        "Debian bookworm live (liveorch)",
        "root=live:CDLABEL=BOOKWORM_LIVE rd.live.image rd.live.overlay.overlayfs=1 console=tty0 console=ttyS0,115200")
    assert [e.title for e in menu.entries] == ["Debian bookworm live (liveorch)", "Check installation media",
                                               "Debian bookworm live (liveorch) (failsafe)"]
    assert (menu.terminal, menu.timeout, menu.timeout_style) == (Terminal.SERIAL, 3, TimeoutStyle.MENU)
    assert plan.options["initrd"].dracut_modules == ("dmsquash-live",)


def test_plan_menu_without_bootloader_element(write_description) -> None:
    plan = make_plan(parse_description(write_description(type='<type image="iso" volid="MY LIVE"/>')))
    menu = plan.options["iso"].menu
    assert (menu.terminal, menu.timeout, menu.timeout_style) == (Terminal.BOTH, 10, TimeoutStyle.MENU)
    assert menu.entries[0] == MenuEntry(
        "Unit test live",
        "root=live:CDLABEL=MY\\x20LIVE rd.live.image rd.live.overlay.overlayfs=1 console=tty0 console=ttyS0,115200")


def test_network_and_medium_cmdlines_differ_only_in_root_and_network(write_description) -> None:
    """The ISO's menu and the network-boot bundle boot the same system the same way."""
    plan = make_plan(parse_description(write_description()), pxe_url=URL, pxe_image=NetworkImage.SQUASHFS)
    assert plan.pxe is not None
    medium = plan.options["iso"].menu.entries[0].kernel_cmdline.split()
    network = plan.pxe.kernel_cmdline.split()
    assert medium[0] == "root=live:CDLABEL=UNIT_LIVE"
    assert network[0] == "root=live:http://10.0.2.2:8000/squashfs.img"
    assert [w for w in network[1:] if w not in ("ip=dhcp", "rd.neednet=1")] == medium[1:]
    assert plan.pxe.kernel_cmdline == ("root=live:http://10.0.2.2:8000/squashfs.img rd.live.image "
                                       "rd.live.overlay.overlayfs=1 ip=dhcp rd.neednet=1 quiet "
                                       "console=tty0 console=ttyS0,115200")


def test_overlay_network_plan_hands_the_aoe_driver_to_the_initrd(write_description) -> None:
    """--pxe with flags="overlay": the initrd stage gets the aoe driver finished, beside the network modules."""
    path = write_description(type='<type image="iso" flags="overlay"/>')
    assert make_plan(parse_description(path), pxe_url=URL).options["initrd"].drivers == ("aoe",)
    assert make_plan(parse_description(path)).options["initrd"].drivers == ()
