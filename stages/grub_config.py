"""The GRUB configuration files of the live ISO: the early one embedded in the core images,
and the menu that the early one loads from the medium."""

from __future__ import annotations

from typing import Any

KERNEL_PATH = "/boot/x86_64/loader/linux"
INITRD_PATH = "/boot/x86_64/loader/initrd"
SERIAL_DEFAULTS = "console=tty0 console=ttyS0,115200"


def early_config(marker: str) -> str:
    """Finds this very medium (CD, USB stick or ISO on a disk) by its marker file."""
    return (
        f"search --no-floppy --set=root --file /boot/grub/{marker}\n"
        "set prefix=($root)/boot/grub\n"
        "configfile ($root)/boot/grub/grub.cfg\n"
    )


def _terminals(console: str) -> str:
    """KIWI's console values: serial, console (the screen), gfxterm; default is both."""
    serial = "serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1\n"
    if console == "serial":
        return serial + "terminal_input serial\nterminal_output serial\n"
    if console in ("console", "gfxterm"):
        return "terminal_input console\nterminal_output console\n"
    return serial + "terminal_input serial console\nterminal_output serial console\n"


def grub_quote(text: str) -> str:
    """One GRUB word, whatever the text holds (GRUB quotes like the shell)."""
    return "'" + text.replace("'", "'\\''") + "'"


def kernel_cmdline(options: dict[str, Any]) -> str:
    # udev's label encoding, which dracut's live module decodes: a label stays one word.
    volid = options["volid"].replace(" ", "\\x20")
    if options.get("flags") == "overlay":
        # liveorch's own live module (stages/dracut/90liveorch-live), KIWI's parameters.
        words = [f"root=live:CDLABEL={volid}"]
        if options.get("persistent_filesystem"):
            words += ["rd.live.overlay.persistent", f"rd.live.overlay.cowfs={options['persistent_filesystem']}"]
    else:
        # dracut 059's dmsquash-live needs overlayfs=1 to overlay a flat squashfs (no nested rootfs.img).
        words = [f"root=live:CDLABEL={volid}", "rd.live.image", "rd.live.overlay.overlayfs=1"]
    extra = options.get("kernelcmdline", "").split()
    words += extra
    if not any(w.startswith("console=") for w in extra):
        words += SERIAL_DEFAULTS.split()
    return " ".join(words)


def _mediacheck_entry(options: dict[str, Any], cmdline: str) -> str:
    """KIWI's "Check installation media": the initrd verifies the implanted MD5, then boots or stops."""
    if not options.get("mediacheck"):
        return ""
    check = "mediacheck=1" if options.get("flags") == "overlay" else "rd.live.check"
    return (
        "menuentry 'Check installation media' --class os {\n"
        + f"    linux {KERNEL_PATH} {cmdline} {check}\n"
        + f"    initrd {INITRD_PATH}\n"
        + "}\n"
    )


def loopback_config(options: dict[str, Any]) -> str:
    """/boot/grub/loopback.cfg: for a GRUB elsewhere that boots this ISO as a file
    (`loopback loop /x.iso; set iso_path=/x.iso; configfile (loop)/boot/grub/loopback.cfg`)."""
    title = grub_quote(options.get("title") or options["volid"])
    cmdline = kernel_cmdline(options).replace("\\", "\\\\")
    return (
        "set default=0\n"
        + f"set timeout={int(options.get('timeout', 10))}\n"
        + f"menuentry {title} --class os {{\n"
        + f"    linux {KERNEL_PATH} iso-scan/filename=${{iso_path}} {cmdline}\n"
        + f"    initrd {INITRD_PATH}\n"
        + "}\n"
    )


def menu_config(options: dict[str, Any]) -> str:
    title = grub_quote(options.get("title") or options["volid"])
    loading = grub_quote(f"Loading {options.get('title') or options['volid']} ...")
    failsafe = grub_quote(f"{options.get('title') or options['volid']} (failsafe)")
    timeout = int(options.get("timeout", 10))
    style = options.get("timeout_style", "menu")
    # GRUB's parser eats one level of backslashes (the \x20 of a label with spaces).
    cmdline = kernel_cmdline(options).replace("\\", "\\\\")
    return (
        _terminals(options.get("console", ""))
        + "set default=0\n"
        + f"set timeout={timeout}\n"
        + f"set timeout_style={style}\n"
        + f"menuentry {title} --class os {{\n"
        + f"    echo {loading}\n"
        + f"    linux {KERNEL_PATH} {cmdline}\n"
        + f"    initrd {INITRD_PATH}\n"
        + "}\n"
        + _mediacheck_entry(options, cmdline)
        + f"menuentry {failsafe} --class os {{\n"
        + f"    linux {KERNEL_PATH} {cmdline} nomodeset noapic acpi=off\n"
        + f"    initrd {INITRD_PATH}\n"
        + "}\n"
    )
