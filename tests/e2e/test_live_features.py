"""Live features of the seed, proven by booting: media check (pass, and a corrupted
medium detected), the live system copied to RAM surviving the CD's ejection, and booting
the ISO as a file on another disk (ISO scan). The four boots run two at a time (one
emulated CPU each), in one module fixture; each test reads its own boot's result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from scenarios import Boots, run_two_at_a_time

from liveorch.orchestrator.boot import BootMode, BootResult, BootScript, boot_and_login
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


def _media_check(iso: Path, work: Path) -> Boots:
    return [boot_and_login(iso, CD, PASSWORD, command="cat /proc/cmdline", script=BootScript(menu_downs=1),
                           log=work / "serial.log")]


class Refused(Exception):
    """A boot that stopped as it should, with its serial console transcript."""

    def __init__(self, message: str, transcript: str) -> None:
        super().__init__(message)
        self.transcript = transcript


def _corrupted_media_check(iso: Path, work: Path) -> Boots:
    """Must not boot: the refusal is the scenario's result."""
    broken = _corrupt_copy(iso, work / "corrupt.iso")
    try:
        return [boot_and_login(broken, CD, PASSWORD, script=BootScript(menu_downs=1), log=work / "serial.log",
                               timeout=400)]
    except CheckFailed as error:
        raise Refused(error.message, (work / "serial.log").read_text(errors="replace")) from None


def _ram_and_eject(iso: Path, work: Path, eject_cd: Callable[[Path], None]) -> Boots:
    monitor = work / "monitor.sock"
    return [boot_and_login(
        iso, CD, PASSWORD,
        command="cat /proc/cmdline; md5sum /usr/lib/x86_64-linux-gnu/*.so* > /dev/null && echo READ-AFTER-EJECT-OK; "
                "losetup -a | grep -q /run/initramfs/squashed.img && echo SQUASHFS-IN-RAM",
        script=BootScript(qemu_extra=("-monitor", f"unix:{monitor},server,nowait"),
                          before_command=lambda: eject_cd(monitor)),
        log=work / "serial.log")]


def _iso_scan(iso: Path, work: Path, scan_disk: tuple[Path, Path, Path]) -> Boots:
    disk, kernel, initrd = scan_disk
    cmdline = ("iso-scan/filename=/images/live.iso root=live:CDLABEL=BOOKWORM_LIVE rd.live.image "
               "rd.live.overlay.overlayfs=1 console=ttyS0,115200")
    return [boot_and_login(
        iso, CD, PASSWORD, command="findmnt -n -o SOURCE,FSTYPE /run/initramfs/isoscandev; "
                                   "losetup -a | grep -c live.iso",
        script=BootScript(attach_iso=False, qemu_extra=("-kernel", str(kernel), "-initrd", str(initrd),
                                                        "-append", cmdline,
                                                        "-drive", f"file={disk},format=raw,if=virtio")),
        log=work / "serial.log")]


@pytest.fixture(scope="module")
def boots(example_build: BuildReport, ram_iso: Path, scan_disk: tuple[Path, Path, Path],
          eject_cd: Callable[[Path], None], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Boots | Exception]:
    """Lanes of about equal length: the two media checks' boots are the longest and shortest."""
    work = {name: tmp_path_factory.mktemp(name) for name in ("check", "ram", "bad", "scan")}
    return run_two_at_a_time({
        "check": lambda: _media_check(example_build.iso, work["check"]),
        "bad": lambda: _corrupted_media_check(example_build.iso, work["bad"]),
        "ram": lambda: _ram_and_eject(ram_iso, work["ram"], eject_cd),
        "scan": lambda: _iso_scan(example_build.iso, work["scan"], scan_disk),
    })


def _boot(boots: dict[str, Boots | Exception], name: str) -> BootResult:
    result = boots[name]
    if isinstance(result, Exception):
        raise result
    return result[0]


def test_media_check_passes_on_a_good_medium(boots: dict[str, Boots | Exception]) -> None:
    result = _boot(boots, "check")
    assert "rd.live.check" in result.command_output
    assert "PASS" in result.transcript


def test_media_check_reports_a_corrupted_medium(boots: dict[str, Boots | Exception]) -> None:
    failure = boots["bad"]
    assert isinstance(failure, Refused), f"a corrupted medium must not boot: {failure!r}"
    assert "FAIL" in failure.transcript, str(failure)


def test_live_system_in_ram_survives_ejecting_the_cd(boots: dict[str, Boots | Exception]) -> None:
    out = _boot(boots, "ram").command_output.replace("\r", "")
    assert "rd.live.ram=1" in out
    assert "READ-AFTER-EJECT-OK" in out
    assert "SQUASHFS-IN-RAM" in out, "the root must come from the copy in RAM, not from the CD"


def test_iso_scan_boots_the_iso_as_a_file_on_another_disk(boots: dict[str, Boots | Exception]) -> None:
    out = _boot(boots, "scan").command_output.replace("\r", "")
    assert "ext4" in out
    assert "\n1\n" in out or "\n2\n" in out


def test_grub_loopback_cfg_is_on_the_iso(scan_disk: tuple[Path, Path, Path], example_build: BuildReport,
                                         tmp_path: Path, iso_files: Callable[[Path, list[str], Path], None]) -> None:
    iso_files(example_build.iso, ["boot/grub/loopback.cfg"], tmp_path)
    text = (tmp_path / "loopback.cfg").read_text()
    assert "iso-scan/filename=${iso_path}" in text
