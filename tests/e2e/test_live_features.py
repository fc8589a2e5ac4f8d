"""Live features of the seed, proven by booting: media check (pass, and a corrupted
medium detected), the live system copied to RAM surviving the CD's ejection, and booting
the ISO as a file on another disk (ISO scan)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from liveorch.orchestrator.boot import BootMode, BootScript, boot_and_login
from liveorch.orchestrator.build import BuildOptions, BuildReport, run_build
from liveorch.orchestrator.errors import CheckFailed
from liveorch.orchestrator.overrides import Overrides

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"
PASSWORD = "linux"
CD = BootMode(uefi=False, disk=False)


def _corrupt_copy(iso: Path, target: Path) -> Path:
    """One byte changed in the middle of the image: inside the squashfs, which fills most of it."""
    data = bytearray(iso.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(data)
    return target


@pytest.fixture(scope="module")
def ram_iso(example_build: BuildReport, test_volume: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example with rd.live.ram: only the iso and checksum stages run again."""
    options = BuildOptions(target_dir=tmp_path_factory.mktemp("ram"), volume=test_volume,
                           overrides=Overrides(type_attrs=["kernelcmdline=console=ttyS0,115200 rd.live.ram=1"]))
    report = run_build(EXAMPLE, options, print)
    assert {s.stage for s in report.stages if not s.cached} == {"iso", "checksum"}
    return report.iso


@pytest.fixture(scope="module")
def scan_disk(example_build: BuildReport, tmp_path_factory: pytest.TempPathFactory,
              scan_disk_of: Callable[..., tuple[Path, Path, Path]]) -> tuple[Path, Path, Path]:
    return scan_disk_of(example_build.iso, tmp_path_factory.mktemp("scan"))


def test_media_check_passes_on_a_good_medium(example_build: BuildReport, tmp_path: Path) -> None:
    result = boot_and_login(example_build.iso, CD, PASSWORD, command="cat /proc/cmdline",
                            script=BootScript(menu_downs=1), log=tmp_path / "serial.log")
    assert "rd.live.check" in result.command_output
    assert "PASS" in result.transcript


def test_media_check_reports_a_corrupted_medium(example_build: BuildReport, tmp_path: Path) -> None:
    broken = _corrupt_copy(example_build.iso, tmp_path / "corrupt.iso")
    with pytest.raises(CheckFailed) as failure:
        boot_and_login(broken, CD, PASSWORD, script=BootScript(menu_downs=1), log=tmp_path / "serial.log",
                       timeout=400)
    transcript = (tmp_path / "serial.log").read_text(errors="replace")
    assert "FAIL" in transcript, failure.value.message


def test_live_system_in_ram_survives_ejecting_the_cd(ram_iso: Path, tmp_path: Path,
                                                     eject_cd: Callable[[Path], None]) -> None:
    monitor = tmp_path / "monitor.sock"
    result = boot_and_login(
        ram_iso, CD, PASSWORD,
        command="cat /proc/cmdline; md5sum /usr/lib/x86_64-linux-gnu/*.so* > /dev/null && echo READ-AFTER-EJECT-OK; "
                "losetup -a | grep -q /run/initramfs/squashed.img && echo SQUASHFS-IN-RAM",
        script=BootScript(qemu_extra=("-monitor", f"unix:{monitor},server,nowait"),
                          before_command=lambda: eject_cd(monitor)),
        log=tmp_path / "serial.log")
    out = result.command_output.replace("\r", "")
    assert "rd.live.ram=1" in out
    assert "READ-AFTER-EJECT-OK" in out
    assert "SQUASHFS-IN-RAM" in out, "the root must come from the copy in RAM, not from the CD"


def test_iso_scan_boots_the_iso_as_a_file_on_another_disk(scan_disk: tuple[Path, Path, Path], tmp_path: Path,
                                                           example_build: BuildReport) -> None:
    disk, kernel, initrd = scan_disk
    cmdline = ("iso-scan/filename=/images/live.iso root=live:CDLABEL=BOOKWORM_LIVE rd.live.image "
               "rd.live.overlay.overlayfs=1 console=ttyS0,115200")
    result = boot_and_login(
        example_build.iso, CD, PASSWORD, command="findmnt -n -o SOURCE,FSTYPE /run/initramfs/isoscandev; "
                                                 "losetup -a | grep -c live.iso",
        script=BootScript(attach_iso=False, qemu_extra=("-kernel", str(kernel), "-initrd", str(initrd),
                                                        "-append", cmdline,
                                                        "-drive", f"file={disk},format=raw,if=virtio")),
        log=tmp_path / "serial.log")
    out = result.command_output.replace("\r", "")
    assert "ext4" in out
    assert "\n1\n" in out or "\n2\n" in out


def test_grub_loopback_cfg_is_on_the_iso(scan_disk: tuple[Path, Path, Path], example_build: BuildReport,
                                         tmp_path: Path, iso_files: Callable[[Path, list[str], Path], None]) -> None:
    iso_files(example_build.iso, ["boot/grub/loopback.cfg"], tmp_path)
    text = (tmp_path / "loopback.cfg").read_text()
    assert "iso-scan/filename=${iso_path}" in text
