"""stages.grub_config: the plan's boot menu written in GRUB's syntax (the menu's content,
its titles and kernel command lines, is tested in test_live_boot.py)."""

from __future__ import annotations

import dataclasses

import pytest

from liveorch.orchestrator import live_boot
from liveorch.orchestrator.description import LiveType
from liveorch.stages.contracts.iso import INITRD_PATH, KERNEL_PATH, BootMenu, MenuEntry, Terminal, TimeoutStyle
from liveorch.stages.grub_config import SERIAL_LINE, early_config, grub_quote, loopback_config, menu_config

SERIAL = "serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1"
CMDLINE = "root=live:CDLABEL=TEST_LIVE rd.live.image quiet"


def menu(**overrides: object) -> BootMenu:
    base = BootMenu(
        terminal=Terminal.BOTH,
        timeout=7,
        timeout_style=TimeoutStyle.MENU,
        entries=(MenuEntry("Test live", CMDLINE), MenuEntry("Test live (failsafe)", f"{CMDLINE} nomodeset")),
        loopback_cmdline=f"iso-scan/filename=${{iso_path}} {CMDLINE}",
    )
    return dataclasses.replace(base, **overrides)


def blocks(text: str) -> list[list[str]]:
    """The lines of each menuentry, from its opening line to its closing brace."""
    found: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("menuentry "):
            found.append([line])
        elif found and found[-1][-1] != "}":
            found[-1].append(line)
    return found


def test_serial_line_is_the_one_grub_config_writes() -> None:
    assert SERIAL_LINE == SERIAL + "\n"


@pytest.mark.parametrize(("terminal", "words"), [(Terminal.SERIAL, "serial"), (Terminal.BOTH, "serial console")])
def test_menu_with_serial_terminal(terminal: Terminal, words: str) -> None:
    lines = menu_config(menu(terminal=terminal)).splitlines()
    assert lines[:3] == [SERIAL, f"terminal_input {words}", f"terminal_output {words}"]


def test_menu_without_serial_terminal() -> None:
    text = menu_config(menu(terminal=Terminal.SCREEN))
    assert "serial" not in text
    assert text.splitlines()[:2] == ["terminal_input console", "terminal_output console"]


@pytest.mark.parametrize("style", list(TimeoutStyle))
@pytest.mark.parametrize("timeout", [0, 7])
def test_timeout_lines(style: TimeoutStyle, timeout: int) -> None:
    lines = menu_config(menu(timeout=timeout, timeout_style=style)).splitlines()
    assert lines[3:6] == ["set default=0", f"set timeout={timeout}", f"set timeout_style={style.value}"]
    assert len([line for line in lines if line.startswith("set timeout")]) == 2


def test_menu_entries() -> None:
    text = menu_config(menu())
    assert blocks(text) == [
        ["menuentry 'Test live' --class os {",
         "    echo 'Loading Test live ...'",
         f"    linux {KERNEL_PATH} {CMDLINE}",
         f"    initrd {INITRD_PATH}",
         "}"],
        ["menuentry 'Test live (failsafe)' --class os {",
         f"    linux {KERNEL_PATH} {CMDLINE} nomodeset",
         f"    initrd {INITRD_PATH}",
         "}"],
    ]
    assert text.count("{") == text.count("}") == 2
    assert text.endswith("}\n")


def test_echo_line_on_the_first_entry_only() -> None:
    three = (MenuEntry("A", CMDLINE), MenuEntry("B", CMDLINE), MenuEntry("C", CMDLINE))
    entries = blocks(menu_config(menu(entries=three)))
    assert [[line for line in entry if line.strip().startswith("echo")] for entry in entries] == [
        ["    echo 'Loading A ...'"], [], []]


def test_title_with_apostrophe_is_quoted_for_grub() -> None:
    text = menu_config(menu(entries=(MenuEntry("Debian's live", CMDLINE),)))
    assert "menuentry 'Debian'\\''s live' --class os {" in text.splitlines()
    assert "    echo 'Loading Debian'\\''s live ...'" in text.splitlines()
    for line in text.splitlines():
        assert line.replace("'\\''", "").count("'") % 2 == 0, line


@pytest.mark.parametrize(("text", "quoted"), [
    ("plain", "'plain'"),
    ("two words", "'two words'"),
    ("it's", "'it'\\''s'"),
    ("$x ; {}", "'$x ; {}'"),
])
def test_grub_quote(text: str, quoted: str) -> None:
    assert grub_quote(text) == quoted


def test_backslashes_are_doubled_for_grubs_parser() -> None:
    """GRUB eats one level of backslashes: the kernel must still see \\x20 in the label."""
    cmdline = "root=live:CDLABEL=MY\\x20LIVE rd.live.image"
    text = menu_config(menu(entries=(MenuEntry("My live", cmdline),)))
    assert f"    linux {KERNEL_PATH} root=live:CDLABEL=MY\\\\x20LIVE rd.live.image" in text.splitlines()
    assert "MY\\x20" not in text.replace("\\\\", "")


def test_plan_menu_with_a_spaced_label_keeps_one_kernel_argument() -> None:
    text = menu_config(live_boot.boot_menu(LiveType(), "MY LIVE", "My live"))
    linux = [line for line in text.splitlines() if line.startswith("    linux ")]
    assert len(linux) == 2
    assert all(line.split()[2] == "root=live:CDLABEL=MY\\\\x20LIVE" for line in linux)


def test_loopback_cfg_boots_the_first_entry_with_the_iso_path() -> None:
    text = loopback_config(menu(terminal=Terminal.SERIAL, timeout=4))
    assert text.splitlines() == [
        "set default=0",
        "set timeout=4",
        "menuentry 'Test live' --class os {",
        f"    linux {KERNEL_PATH} iso-scan/filename=${{iso_path}} {CMDLINE}",
        f"    initrd {INITRD_PATH}",
        "}",
    ]


def test_loopback_cfg_doubles_backslashes_too() -> None:
    text = loopback_config(menu(loopback_cmdline="iso-scan/filename=${iso_path} root=live:CDLABEL=A\\x20B"))
    assert f"    linux {KERNEL_PATH} iso-scan/filename=${{iso_path}} root=live:CDLABEL=A\\\\x20B" in text.splitlines()


def test_early_config_finds_the_medium_by_marker() -> None:
    early = early_config("liveorch-0123456789abcdef.id")
    assert early.splitlines() == [
        "search --no-floppy --set=root --file /boot/grub/liveorch-0123456789abcdef.id",
        "set prefix=($root)/boot/grub",
        "configfile ($root)/boot/grub/grub.cfg",
    ]
