"""The GRUB configuration files of the live ISO: the early one embedded in the core images,
and the menu that the early one loads from the medium.

The menu's content (titles, kernel command lines, timeout) is the plan's; this module only
writes it in GRUB's syntax.
"""

from __future__ import annotations

from liveorch.stages.contracts.iso import INITRD_PATH, KERNEL_PATH, BootMenu, MenuEntry, Terminal

SERIAL_LINE = "serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n"


def early_config(marker: str) -> str:
    """Finds this very medium (CD, USB stick or ISO on a disk) by its marker file."""
    return (
        f"search --no-floppy --set=root --file /boot/grub/{marker}\n"
        "set prefix=($root)/boot/grub\n"
        "configfile ($root)/boot/grub/grub.cfg\n"
    )


def netboot_early_config() -> str:
    """For the network-boot loader: GRUB loaded by a UEFI PXE client sets $cmdpath to the
    TFTP server and folder it came from, e.g. (tftp,10.0.2.2), so the bundle's grub.cfg is
    read from beside the loader, wherever the server keeps it."""
    return (
        'echo "Loading $cmdpath/grub.cfg"\n'
        "configfile $cmdpath/grub.cfg\n"
    )


def _terminals(terminal: Terminal) -> str:
    if terminal is Terminal.SERIAL:
        return SERIAL_LINE + "terminal_input serial\nterminal_output serial\n"
    if terminal is Terminal.SCREEN:
        return "terminal_input console\nterminal_output console\n"
    return SERIAL_LINE + "terminal_input serial console\nterminal_output serial console\n"


def grub_quote(text: str) -> str:
    """One GRUB word, whatever the text holds (GRUB quotes like the shell)."""
    return "'" + text.replace("'", "'\\''") + "'"


def _grub_cmdline(cmdline: str) -> str:
    """GRUB's parser eats one level of backslashes (the \\x20 of a label with spaces)."""
    return cmdline.replace("\\", "\\\\")


def _entry(entry: MenuEntry, loading: bool, initrds: tuple[str, ...]) -> str:
    echo = f"    echo {grub_quote(f'Loading {entry.title} ...')}\n" if loading else ""
    return (
        f"menuentry {grub_quote(entry.title)} --class os {{\n"
        + echo
        + f"    linux {KERNEL_PATH} {_grub_cmdline(entry.kernel_cmdline)}\n"
        + f"    initrd {' '.join(initrds)}\n"
        + "}\n"
    )


def loopback_config(menu: BootMenu, initrds: tuple[str, ...] = (INITRD_PATH,)) -> str:
    """/boot/grub/loopback.cfg: for a GRUB elsewhere that boots this ISO as a file
    (`loopback loop /x.iso; set iso_path=/x.iso; configfile (loop)/boot/grub/loopback.cfg`)."""
    entry = MenuEntry(menu.entries[0].title, menu.loopback_cmdline)
    return "set default=0\n" + f"set timeout={menu.timeout}\n" + _entry(entry, loading=False, initrds=initrds)


def menu_config(menu: BootMenu, initrds: tuple[str, ...] = (INITRD_PATH,)) -> str:
    """`initrds`: the image's initrd, and with verity_blocks the one with the root hash."""
    return (
        _terminals(menu.terminal)
        + "set default=0\n"
        + f"set timeout={menu.timeout}\n"
        + f"set timeout_style={menu.timeout_style.value}\n"
        + "".join(_entry(entry, loading=index == 0, initrds=initrds) for index, entry in enumerate(menu.entries))
    )
