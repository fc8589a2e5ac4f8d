"""flags="overlay": liveorch's own live module, proven by booting examples/kiwi-features
(hybridpersistent="true"): persistence on a USB stick across a reboot (ext4: created when
booted with BIOS, found again when booted with UEFI; xfs: chosen on the kernel command
line), a cow file beside an ISO found by iso-scan, the fallback to a RAM overlay on a CD
with the reason on the console, rd.live.ram surviving the CD's eject, and the module's
media check (PASS, and a one-byte corruption refused).

Variants that would change the image's /.profile (hybridpersistent_filesystem, firmware)
rebuild the root; the kernel command line is changed at boot instead, so the suite builds
kiwi-features once and the iso stage again only for rd.live.ram.

Each scenario is a sequence of boots; two scenarios run at a time (one emulated CPU each)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from scenarios import Boots, output_lines, run_two_at_a_time

from liveorch.orchestrator.boot import BootMode, BootResult, BootScript, boot_and_login
from liveorch.orchestrator.build import BuildReport
from liveorch.orchestrator.errors import CheckFailed

pytestmark = pytest.mark.slow
PASSWORD = "linux"  # examples/kiwi-features: root
TOKEN = "liveorch-was-here"
MOUNTS = "findmnt -n -o SOURCE,FSTYPE /; findmnt -n -o SOURCE,FSTYPE /run/liveorch/cow"
WRITE = f"{MOUNTS}; echo {TOKEN} > /root/persisted.txt; sync"
READ = f"{MOUNTS}; cat /root/persisted.txt"
STICK_SPARE = 700 << 20  # free space after the ISO data on the "USB stick" (xfs needs 300 MiB)

def _stick(iso: Path, work: Path) -> Path:
    """The ISO written to a larger USB stick: a sparse raw file, as dd leaves it."""
    stick = work / "stick.img"
    with iso.open("rb") as source, stick.open("wb") as target:
        while chunk := source.read(1 << 20):
            target.write(chunk)
        target.truncate(iso.stat().st_size + STICK_SPARE)
    return stick


def _boot_stick(stick: Path, uefi: bool, command: str, log: Path) -> BootResult:
    return boot_and_login(stick, BootMode(uefi=uefi, disk=True), PASSWORD, command=command, log=log,
                          script=BootScript(attach_iso=False,
                                            qemu_extra=("-drive", f"file={stick},format=raw,if=virtio")))


def _persist_on_stick(iso: Path, work: Path) -> Boots:
    """First boot with BIOS creates the partition; the second, with UEFI, must still boot
    the stick (both boot paths survive the changed partition table) and find it."""
    stick = _stick(iso, work)
    return [_boot_stick(stick, False, WRITE, work / "boot1.log"), _boot_stick(stick, True, READ, work / "boot2.log")]


def _persist_xfs_on_stick(iso: Path, work: Path, iso_files: Callable[[Path, list[str], Path], None]) -> Boots:
    """rd.live.overlay.cowfs=xfs given to the ISO's own kernel and initrd (UEFI firmware)."""
    stick = _stick(iso, work)
    iso_files(iso, ["boot/x86_64/loader/linux", "boot/x86_64/loader/initrd"], work)
    cmdline = ("root=live:CDLABEL=KIWI_FEATURES rd.live.overlay.persistent rd.live.overlay.cowfs=xfs "
               "console=ttyS0,115200")
    script = BootScript(attach_iso=False, qemu_extra=("-kernel", str(work / "linux"), "-initrd", str(work / "initrd"),
                                                      "-append", cmdline,
                                                      "-drive", f"file={stick},format=raw,if=virtio"))
    return [boot_and_login(stick, BootMode(uefi=True, disk=True), PASSWORD, command=command, script=script,
                           log=work / f"boot{number}.log") for number, command in ((1, WRITE), (2, READ))]


def _persist_in_cow_file(iso: Path, work: Path, scan_disk_of: Callable[..., tuple[Path, Path, Path]]) -> Boots:
    disk, kernel, initrd = scan_disk_of(iso, work, "800M")
    cmdline = ("iso-scan/filename=/images/live.iso root=live:CDLABEL=KIWI_FEATURES rd.live.overlay.persistent "
               "rd.live.overlay.cowfs=ext4 rd.live.cowfile.mbsize=200 console=ttyS0,115200")
    script = BootScript(attach_iso=False, qemu_extra=("-kernel", str(kernel), "-initrd", str(initrd),
                                                      "-append", cmdline,
                                                      "-drive", f"file={disk},format=raw,if=virtio"))
    boots = []
    for number, command in enumerate((WRITE, READ), 1):
        boots.append(boot_and_login(iso, BootMode(uefi=False, disk=False), PASSWORD, command=command,
                                    script=script, log=work / f"boot{number}.log"))
    listing = subprocess.run(["debugfs", "-R", "ls -l /images", str(disk)], capture_output=True, text=True,
                             check=True).stdout
    boots[-1].command_output += f"\nDISK-LISTING\n{listing}"
    return boots


def _media_check(iso: Path, work: Path, corrupt: bool) -> Boots:
    """The menu's "Check installation media" entry; on a corrupted copy the boot must stop.
    The entry keeps the default entry's rd.live.overlay.persistent, so the intact medium's
    boot is also the CD's fallback to a RAM overlay."""
    if corrupt:
        data = bytearray(iso.read_bytes())
        data[len(data) // 2] ^= 0xFF  # inside the squashfs, which fills most of the ISO
        iso = work / "corrupt.iso"
        iso.write_bytes(data)
    return [boot_and_login(iso, BootMode(uefi=False, disk=False), PASSWORD, command=f"cat /proc/cmdline; {MOUNTS}",
                           script=BootScript(menu_downs=1), log=work / "check.log", timeout=400)]


def _ram_and_eject(iso: Path, work: Path, eject_cd: Callable[[Path], None]) -> Boots:
    monitor = work / "monitor.sock"
    command = ("cat /proc/cmdline; md5sum /usr/lib/x86_64-linux-gnu/*.so* > /dev/null && echo READ-AFTER-EJECT-OK; "
               "findmnt -n -o SOURCE,FSTYPE /run/liveorch/ram; losetup -a | grep -c /run/liveorch/ram/squashfs.img")
    script = BootScript(qemu_extra=("-monitor", f"unix:{monitor},server,nowait"),
                        before_command=lambda: eject_cd(monitor))
    return [boot_and_login(iso, BootMode(uefi=False, disk=False), PASSWORD, command=command, script=script,
                           log=work / "ram.log")]


@pytest.fixture(scope="module")
def scenarios(features_build: BuildReport, features_variant: Callable[..., BuildReport],
              tmp_path_factory: pytest.TempPathFactory, scan_disk_of: Callable[..., tuple[Path, Path, Path]],
              eject_cd: Callable[[Path], None],
              iso_files: Callable[[Path, list[str], Path], None]) -> dict[str, Boots | Exception]:
    """Every boot sequence, two at a time; the rd.live.ram variant reruns only the iso and checksum stages."""
    ram = features_variant("kernelcmdline=console=ttyS0,115200 rd.live.ram=1")
    assert {s.stage for s in ram.stages if not s.cached} == {"iso", "checksum"}
    work = {name: tmp_path_factory.mktemp(name) for name in ("ext4", "xfs", "cowfile", "ram", "check", "bad")}
    jobs: dict[str, Callable[[], Boots]] = {
        "ext4": lambda: _persist_on_stick(features_build.iso, work["ext4"]),
        "xfs": lambda: _persist_xfs_on_stick(features_build.iso, work["xfs"], iso_files),
        "cowfile": lambda: _persist_in_cow_file(features_build.iso, work["cowfile"], scan_disk_of),
        "ram": lambda: _ram_and_eject(ram.iso, work["ram"], eject_cd),
        "check": lambda: _media_check(features_build.iso, work["check"], corrupt=False),
        "bad": lambda: _media_check(features_build.iso, work["bad"], corrupt=True),
    }
    return run_two_at_a_time(jobs)


def _boots(scenarios: dict[str, Boots | Exception], name: str) -> Boots:
    result = scenarios[name]
    if isinstance(result, Exception):
        raise result
    return result


@pytest.mark.parametrize("fs", ["ext4", "xfs"])
def test_persistence_partition_created_at_first_boot_keeps_files_across_reboot(
        scenarios: dict[str, Boots | Exception], fs: str) -> None:
    first, second = _boots(scenarios, fs)
    assert "liveorch-live overlay" in output_lines(first)
    # xorriso's GPT has three entries (Gap0, EFI partition, Gap1): the new one is the fourth.
    assert f"/dev/vda4 {fs}" in output_lines(first)
    assert "creating the persistence partition on /dev/vda" in first.transcript
    assert f"/dev/vda4 {fs}" in output_lines(second)
    assert "persistent: using /dev/vda4" in second.transcript, "the second boot finds the partition by its label"
    assert TOKEN in output_lines(second), "a file written before the reboot must survive it"


def test_cow_file_beside_an_iso_found_by_iso_scan(scenarios: dict[str, Boots | Exception]) -> None:
    first, second = _boots(scenarios, "cowfile")
    assert "iso-scan: found /images/live.iso" in first.transcript
    assert "creating the cow file images/live.cow" in first.transcript
    assert any(line.startswith("/dev/loop") and line.endswith("ext4") for line in output_lines(second))
    assert TOKEN in output_lines(second)
    assert "live.cow" in second.command_output.split("DISK-LISTING", 1)[1]


def test_cd_boots_without_persistence_and_says_why(scenarios: dict[str, Boots | Exception]) -> None:
    (boot,) = _boots(scenarios, "check")
    assert "rd.live.overlay.persistent" in boot.command_output
    assert "liveorch-live overlay" in output_lines(boot)
    assert "liveorch-cow tmpfs" in output_lines(boot)
    assert "persistence not possible: the medium /dev/sr0 is a CD/DVD (read-only)" in boot.transcript


def test_ram_boot_survives_ejecting_the_cd(scenarios: dict[str, Boots | Exception]) -> None:
    (boot,) = _boots(scenarios, "ram")
    lines = output_lines(boot)
    assert "READ-AFTER-EJECT-OK" in lines
    assert "liveorch-ram tmpfs" in lines
    assert "1" in lines, "the squashfs must be mounted from the copy in RAM"


def test_media_check_passes_on_the_intact_medium(scenarios: dict[str, Boots | Exception]) -> None:
    (boot,) = _boots(scenarios, "check")
    assert "mediacheck=1" in boot.command_output
    assert "liveorch-live: media check PASS" in boot.transcript


def test_media_check_refuses_a_corrupted_medium(scenarios: dict[str, Boots | Exception]) -> None:
    failure = scenarios["bad"]
    assert isinstance(failure, CheckFailed), "a corrupted medium must not boot"
    assert "media check failed" in failure.message
