"""stages.grub_config: the live kernel command line and the GRUB menu."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveorch.orchestrator.description import parse_description
from liveorch.orchestrator.plan import make_plan
from liveorch.stages.grub_config import (
    INITRD_PATH,
    KERNEL_PATH,
    SERIAL_DEFAULTS,
    early_config,
    kernel_cmdline,
    menu_config,
)

SERIAL_LINE = "serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1"


def options(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"volid": "TEST_LIVE", "flags": "dmsquash", "kernelcmdline": "", "console": "",
                               "timeout": 7, "timeout_style": "menu", "title": "Test live"}
    return {**base, **overrides}


def test_dmsquash_cmdline() -> None:
    words = kernel_cmdline(options()).split()
    assert words[0] == "root=live:CDLABEL=TEST_LIVE"
    assert "rd.live.image" in words
    assert "rd.live.overlay.overlayfs=1" in words


def test_default_console_added_when_description_has_none() -> None:
    words = kernel_cmdline(options(kernelcmdline="quiet splash")).split()
    assert words[-4:] == ["quiet", "splash", *SERIAL_DEFAULTS.split()]
    assert words.count("console=tty0") == 1


def test_no_default_console_when_description_sets_one() -> None:
    words = kernel_cmdline(options(kernelcmdline="console=ttyS1,9600 quiet")).split()
    assert "console=ttyS1,9600" in words
    assert "quiet" in words
    assert "console=tty0" not in words
    assert "console=ttyS0,115200" not in words


def test_example_cmdline_has_its_consoles_once(example_config: Path) -> None:
    plan = make_plan(parse_description(example_config))
    cmdline = kernel_cmdline(plan.options["iso"])
    assert cmdline == ("root=live:CDLABEL=BOOKWORM_LIVE rd.live.image rd.live.overlay.overlayfs=1 "
                       "console=tty0 console=ttyS0,115200")


def test_missing_kernelcmdline_option_is_fine() -> None:
    opts = options()
    del opts["kernelcmdline"]
    assert kernel_cmdline(opts).split()[-2:] == SERIAL_DEFAULTS.split()


@pytest.mark.parametrize("console", ["", "serial"])
def test_menu_with_serial_terminal(console: str) -> None:
    menu = menu_config(options(console=console, timeout=7))
    lines = menu.splitlines()
    assert SERIAL_LINE in lines
    assert "set timeout=7" in lines
    assert "set timeout_style=menu" in lines
    if console == "serial":
        assert "terminal_input serial" in lines
        assert "terminal_output serial" in lines
    else:
        assert "terminal_input serial console" in lines
        assert "terminal_output serial console" in lines


@pytest.mark.parametrize("console", ["console", "gfxterm"])
def test_menu_without_serial_terminal(console: str) -> None:
    menu = menu_config(options(console=console, timeout=0))
    assert "serial" not in menu.replace("console=ttyS0", "")
    assert "terminal_input console" in menu.splitlines()
    assert "terminal_output console" in menu.splitlines()
    assert "set timeout=0" in menu.splitlines()


def test_menu_entries() -> None:
    menu = menu_config(options(kernelcmdline="quiet"))
    cmdline = kernel_cmdline(options(kernelcmdline="quiet"))
    assert "menuentry 'Test live' --class os {" in menu
    assert f"    linux {KERNEL_PATH} {cmdline}\n" in menu
    assert f"    linux {KERNEL_PATH} {cmdline} nomodeset noapic acpi=off\n" in menu
    assert menu.count(f"    initrd {INITRD_PATH}\n") == 2
    assert menu.count("{") == menu.count("}") == 2
    assert "set default=0" in menu.splitlines()


def test_menu_title_falls_back_to_volid() -> None:
    menu = menu_config(options(title=None))
    assert "menuentry 'TEST_LIVE' --class os {" in menu


def test_menu_defaults_without_timeout_and_console() -> None:
    menu = menu_config({"volid": "X"})
    assert "set timeout=10" in menu.splitlines()
    assert SERIAL_LINE in menu.splitlines()


def test_early_config_finds_the_medium_by_marker() -> None:
    early = early_config("liveorch-0123456789abcdef.id")
    assert early.splitlines() == [
        "search --no-floppy --set=root --file /boot/grub/liveorch-0123456789abcdef.id",
        "set prefix=($root)/boot/grub",
        "configfile ($root)/boot/grub/grub.cfg",
    ]


def test_overlay_cmdline_is_liveorchs_module_without_dmsquash_words() -> None:
    words = kernel_cmdline(options(flags="overlay")).split()
    assert words[0] == "root=live:CDLABEL=TEST_LIVE"
    assert not [w for w in words if w.startswith(("rd.live.image", "rd.live.overlay"))]


def test_overlay_persistence_words_follow_the_filesystem() -> None:
    words = kernel_cmdline(options(flags="overlay", persistent_filesystem="xfs")).split()
    assert "rd.live.overlay.persistent" in words
    assert "rd.live.overlay.cowfs=xfs" in words


def test_persistence_words_only_for_overlay() -> None:
    words = kernel_cmdline(options(flags="dmsquash", persistent_filesystem="ext4")).split()
    assert "rd.live.overlay.persistent" not in words


def test_media_check_entry_speaks_each_modules_parameter() -> None:
    overlay = menu_config(options(flags="overlay", mediacheck=True))
    dmsquash = menu_config(options(flags="dmsquash", mediacheck=True))
    assert "mediacheck=1" in overlay.split("Check installation media")[1].split("}")[0]
    assert "rd.live.check" in dmsquash.split("Check installation media")[1].split("}")[0]


def test_volid_with_space_stays_one_kernel_argument() -> None:
    words = kernel_cmdline(options(volid="MY LIVE")).split()
    assert "LIVE" not in words
    assert [w for w in words if w.startswith("root=")] == ["root=live:CDLABEL=MY\\x20LIVE"]


def test_title_with_apostrophe_keeps_quotes_balanced() -> None:
    menu = menu_config(options(title="Debian's live"))
    for line in menu.splitlines():
        unescaped = line.replace("\\'", "")
        assert unescaped.count("'") % 2 == 0, line


def test_mediacheck_adds_a_check_entry_only_when_asked() -> None:
    assert "Check installation media" not in menu_config(options())
    menu = menu_config(options(mediacheck=True))
    assert "menuentry 'Check installation media'" in menu
    assert [ln for ln in menu.splitlines() if "rd.live.check" in ln and ln.strip().startswith("linux")]


def test_loopback_cfg_passes_the_iso_path_to_the_live_module() -> None:
    from liveorch.stages.grub_config import loopback_config

    text = loopback_config(options())
    assert "iso-scan/filename=${iso_path}" in text
    assert "root=live:CDLABEL=" in text
