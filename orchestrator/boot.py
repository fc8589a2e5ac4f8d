"""Boots an ISO in QEMU headless and logs in on the serial console.

Four ways, as a user would meet the image: from CD or as a disk (a USB stick written with
dd), each with BIOS (SeaBIOS) or UEFI (OVMF); UEFI also with Secure Boot enforced, as on a
PC: OVMF's Secure Boot build with Microsoft's keys enrolled. KVM is used only when asked
(--kvm) and when it really works: some VMs expose a /dev/kvm that hangs 64-bit guests or
makes QEMU abort, so the default is emulation.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pexpect

from liveorch.orchestrator.console import (
    CommandResult,
    clean_transcript,
    command_line,
    end_pattern,
    new_marker,
    parse_command_result,
    redact,
)
from liveorch.orchestrator.errors import CheckFailed, LiveorchError
from liveorch.orchestrator.pxe import UEFI_LOADER
from liveorch.orchestrator.target_files import write_file_atomic

OVMF_CANDIDATES = ("/usr/share/ovmf/OVMF.fd", "/usr/share/qemu/OVMF.fd", "/usr/share/OVMF/OVMF_CODE.fd")
# Debian's ovmf: the Secure Boot build (needs SMM) and variables with Microsoft's keys enrolled
# (KEK, and in db the third-party UEFI CA that signs shim), so Secure Boot is on from the start.
OVMF_SECURE_BOOT = (Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"))
# The EFI global variable that says whether the firmware enforced Secure Boot at this boot.
SECURE_BOOT_EFIVAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
FAILURE_MARKERS = ("Kernel panic", "emergency mode", "Entering emergency", "dracut Warning: Could not boot",
                   "Give root password for maintenance", "You are in emergency mode", "CD check failed",
                   "media check failed", "verity check FAILED", "Refusing to continue",
                   # UEFI: nothing the firmware would start (e.g. Secure Boot refused it), shim refused GRUB.
                   "BdsDxe: No bootable option or device was found", "Verification failed: ")
DEFAULT_COMMAND = "cat /proc/cmdline; findmnt -n /"
COMMAND_TIMEOUT = 300.0  # seconds for one command; `systemctl is-system-running --wait` under emulation takes a while
# Seconds from the user name to the password prompt, and from the password to a shell: under
# emulation on a busy machine (two boots beside builds) a minute was seen to pass.
LOGIN_STEP_TIMEOUT = 180.0


@dataclass(frozen=True)
class BootMode:
    uefi: bool
    disk: bool
    secure_boot: bool = False  # UEFI only

    def __post_init__(self) -> None:
        if self.secure_boot and not self.uefi:
            raise LiveorchError("Secure Boot needs UEFI firmware", hint="add --uefi")

    @property
    def name(self) -> str:
        firmware = "uefi-secureboot" if self.secure_boot else "uefi" if self.uefi else "bios"
        return f"{firmware}-{'disk' if self.disk else 'cd'}"


BOOT_MODES = (BootMode(False, False), BootMode(True, False), BootMode(False, True), BootMode(True, True))


@dataclass
class BootResult:
    mode: str
    seconds_to_login: float
    command_output: str  # every command's output, one after the other
    transcript: str  # plain text: see console.clean_transcript
    commands: list[CommandResult] = field(default_factory=list)


def ovmf_firmware() -> Path:
    for candidate in OVMF_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise LiveorchError("no OVMF firmware found for UEFI boots", hint="apt-get install ovmf")


def secure_boot_firmware() -> list[str]:
    """QEMU arguments for OVMF with Secure Boot enforced.

    The Secure Boot build keeps its variables safe in SMM, so the machine is a q35 with SMM
    and the flash marked secure. The variables start from Debian's template with Microsoft's
    keys; snapshot=on gives the guest a writable copy for this boot (shim records its SBAT
    level) and leaves the template untouched.
    """
    code, variables = OVMF_SECURE_BOOT
    if not (code.is_file() and variables.is_file()):
        raise LiveorchError(f"no OVMF Secure Boot firmware ({code}, {variables})", hint="apt-get install ovmf")
    return [
        "-machine", "q35,smm=on",
        "-global", "driver=cfi.pflash01,property=secure,value=on",
        "-global", "ICH9-LPC.disable_s3=1",
        "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
        "-drive", f"if=pflash,format=raw,unit=1,snapshot=on,file={variables}",
    ]


def kvm_usable() -> bool:
    """Whether /dev/kvm can be opened. On some VMs it opens but hangs 64-bit guests, so
    liveorch uses it only when asked (--kvm), and says so."""
    return kvm_problem() is None


def kvm_problem(device: Path = Path("/dev/kvm")) -> str | None:
    """Why KVM cannot be used here (for an error that says what to fix), or None."""
    try:
        os.close(os.open(device, os.O_RDWR))
    except OSError as error:
        return f"{device} does not open ({error.strerror or error})"
    return qemu_kvm_problem()


def qemu_kvm_problem() -> str | None:
    """On some VMs /dev/kvm opens, yet QEMU aborts setting up the virtual CPU ("failed to set
    MSR"). A stopped guest told to quit at once shows that in a tenth of a second, before a
    boot would end in the same abort."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return None  # qemu_argv says what to install
    argv = [qemu, "-enable-kvm", "-cpu", "host", "-S", "-nodefaults", "-display", "none", "-serial", "none",
            "-monitor", "stdio", "-m", "16"]
    try:
        done = subprocess.run(argv, input=b"quit\n", capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return "QEMU did not start a KVM guest within 60 s"
    if done.returncode == 0:
        return None
    lines = done.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {done.returncode}"]
    return f"QEMU cannot start a KVM guest ({lines[0].removeprefix('qemu-system-x86_64: ')})"


def qemu_argv(iso: Path, mode: BootMode, memory_mib: int = 2048, kvm: bool = False, headless: bool = True,
              persistent: Path | None = None, attach_iso: bool = True, nic: str | None = None) -> list[str]:
    """nic: QEMU's -nic value for a headless boot (default: no network), e.g. pxe_nic()'s."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise LiveorchError("qemu-system-x86_64 is not installed", hint="apt-get install qemu-system-x86")
    argv = [qemu, "-m", str(memory_mib), "-smp", "1" if headless else "2"]
    if headless:
        argv += ["-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot", "-nic", nic or "none"]
    else:
        # The serial console on the terminal (Ctrl-A X quits), the screen in a window if there is one.
        argv += ["-serial", "mon:stdio", "-nic", "user,model=virtio-net-pci"]
    if persistent is not None:
        argv += ["-drive", f"file={persistent},format=raw,if=virtio"]
    if kvm:
        argv += ["-enable-kvm", "-cpu", "host"]
    if mode.secure_boot:
        argv += secure_boot_firmware()
    elif mode.uefi:
        argv += ["-bios", str(ovmf_firmware())]
    if not attach_iso:
        return argv
    if mode.disk:
        # snapshot=on: the guest may write to its "stick" without touching the ISO file.
        argv += ["-drive", f"file={iso},format=raw,if=virtio,snapshot=on"]
        if not headless:
            argv += ["-boot", "menu=on"]
    else:
        argv += ["-drive", f"file={iso},media=cdrom,readonly=on,if=ide"]
    return argv


@dataclass
class BootScript:
    """Optional steps of a scripted boot, for the live-feature tests."""

    menu_downs: int = 0  # choose the n-th entry below the default in GRUB's menu
    qemu_extra: tuple[str, ...] = ()  # e.g. direct kernel boot, another disk
    before_command: Callable[[], None] | None = None  # e.g. eject the CD through the QEMU monitor
    attach_iso: bool = True
    nic: str | None = None  # a network for the guest, e.g. pxe_nic(bundle); headless boots have none


def pxe_nic(tftp_root: Path, bootfile: str = "boot.ipxe") -> str:
    """QEMU's user network with its built-in TFTP server and DHCP's boot file: with no disk
    and no CD the firmware's iPXE (the NIC's option ROM) boots from the network. The guest
    reaches this host's 127.0.0.1 as 10.0.2.2."""
    if "," in str(tftp_root):
        raise LiveorchError(f"{tftp_root}: QEMU's -nic option cannot take a path with a comma")
    return f"user,model=virtio-net-pci,tftp={tftp_root},bootfile={bootfile}"


def uefi_pxe_devices(tftp_root: Path, bootfile: str = UEFI_LOADER) -> tuple[str, ...]:
    """QEMU arguments for a UEFI network boot as a PC does it: OVMF's own PXE client loads
    the boot file by TFTP from QEMU's user network. `romfile=` leaves out the NIC's iPXE
    ROM, which would otherwise do the PXE step itself; `bootindex=0` puts the NIC first, so
    OVMF starts with IPv4 PXE (the empty CD drive, IPv6 PXE and HTTP boot come after).
    Used with no -nic (BootScript.nic None) and no CD or disk attached."""
    if "," in str(tftp_root):
        raise LiveorchError(f"{tftp_root}: QEMU's -netdev option cannot take a path with a comma")
    return (
        "-netdev", f"user,id=pxe,tftp={tftp_root},bootfile={bootfile}",
        "-device", "virtio-net-pci,netdev=pxe,romfile=,bootindex=0",
    )


def boot_and_login(iso: Path, mode: BootMode, password: str, command: str | Sequence[str] = DEFAULT_COMMAND,
                   timeout: float = 600, user: str = "root", log: Path | None = None,
                   script: BootScript | None = None, kvm: bool = False,
                   command_timeout: float = COMMAND_TIMEOUT) -> BootResult:
    """Boot, wait for the login prompt, log in, run each command in order, power off. Raises
    CheckFailed when the boot or the login fails; a command that fails does not stop the
    others, its exit code is in the result. log gets the cleaned transcript, also on failure."""
    script = script or BootScript()
    commands = [command] if isinstance(command, str) else list(command)
    argv = qemu_argv(iso, mode, kvm=kvm, attach_iso=script.attach_iso, nic=script.nic) + list(script.qemu_extra)
    started = time.monotonic()
    child = pexpect.spawn(argv[0], argv[1:], timeout=timeout, maxread=65536, env={**os.environ, "TERM": "dumb"})
    raw = bytearray()
    child.logfile_read = _Collector(raw)
    try:
        if script.menu_downs:
            _choose_menu_entry(child, raw, script.menu_downs, timeout)
        _expect(child, [rb"login: ?$", rb"login: "], "the login prompt", raw, timeout)
        seconds = time.monotonic() - started
        _log_in(child, raw, user, password)
        if script.before_command:
            script.before_command()
        results = [_run(child, raw, each, command_timeout) for each in commands]
        child.sendline("systemctl poweroff --force --force")
        return BootResult(mode.name, seconds, "".join(r.output for r in results), _transcript(raw, password),
                          results)
    finally:
        child.close(force=True)
        if log:
            write_file_atomic(log, _transcript(raw, password))


def _choose_menu_entry(child: pexpect.spawn, raw: bytearray, downs: int, timeout: float) -> None:
    _expect(child, [rb"Check installation media", rb"\(failsafe\)"], "the GRUB menu", raw, timeout)
    # At once: a menu timeout of one second (kiwi-features) leaves no time to wait.
    time.sleep(0.1)
    child.send("\x1b[B" * downs)
    time.sleep(0.5)
    child.send("\r")


def _log_in(child: pexpect.spawn, raw: bytearray, user: str, password: str) -> None:
    """The password is sent, never logged: pexpect records only what the guest writes, and
    getty does not echo it."""
    child.sendline(user)
    _expect(child, [rb"[Pp]assword: ?"], "the password prompt", raw, LOGIN_STEP_TIMEOUT)
    child.sendline(password)
    index = _expect(child, [rb"[#$] ?$", rb"[#$] ", rb"Login incorrect"], "a shell prompt after login", raw,
                    LOGIN_STEP_TIMEOUT)
    if index == 2:
        raise CheckFailed(f"the guest refused the login as {user!r} (Login incorrect)",
                          hint="check --user and --password")


def _run(child: pexpect.spawn, raw: bytearray, command: str, timeout: float) -> CommandResult:
    """One command, framed by markers (see console.py). Boot failure markers are not watched
    here: a command may well print "emergency mode" or "Kernel panic" (grep in a journal)."""
    marker = new_marker()
    child.sendline(command_line(command, marker))
    _expect(child, [end_pattern(marker)], f"the end of the command {command!r}", raw, timeout, watch_boot=False)
    try:
        return parse_command_result(clean_transcript(bytes(raw)), command, marker)
    except ValueError:
        raise CheckFailed(f"the output of the command {command!r} could not be read from the console",
                          hint="\n".join(_tail(raw))) from None


def _transcript(raw: bytearray, password: str) -> str:
    return redact(clean_transcript(bytes(raw)), password)


def _tail(raw: bytearray) -> list[str]:
    return clean_transcript(bytes(raw)).strip().splitlines()[-15:]


def boot_interactive(iso: Path, mode: BootMode, memory_mib: int, kvm: bool, persistent: Path | None) -> int:
    """The seed's QEMU step as one command: the guest's serial console on this terminal."""
    argv = qemu_argv(iso, mode, memory_mib, kvm=kvm, headless=False, persistent=persistent)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        argv += ["-display", "none"]
    return os.spawnv(os.P_WAIT, argv[0], argv)


class _Collector:
    """Keeps the console's raw bytes: escape sequences arrive split across reads, so they are
    removed from the whole transcript (clean_transcript), not from each read."""

    def __init__(self, sink: bytearray) -> None:
        self.sink = sink

    def write(self, data: bytes) -> None:
        self.sink.extend(data)

    def flush(self) -> None:
        pass


def _expect(child: pexpect.spawn, patterns: list[bytes], what: str, raw: bytearray, timeout: float,
            watch_boot: bool = True) -> int:
    """The index of the pattern that matched, or CheckFailed with the transcript's last lines."""
    failures = [re.escape(m.encode()) for m in FAILURE_MARKERS] if watch_boot else []
    index = child.expect([*patterns, *failures, pexpect.EOF, pexpect.TIMEOUT], timeout=timeout)
    if index < len(patterns):
        return index
    if index < len(patterns) + len(failures):
        reason = f"boot failed ({FAILURE_MARKERS[index - len(patterns)]}) before {what}"
    elif index == len(patterns) + len(failures):
        reason = f"QEMU exited before {what}"
    else:
        reason = f"timed out after {timeout:.0f} s waiting for {what}"
    raise CheckFailed(reason, hint="\n".join(_tail(raw)))
