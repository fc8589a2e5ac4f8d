"""KIWI's iso `filesystem` layouts, built and booted: each variant shares the root of a build
the session already made (the example for flags="dmsquash", kiwi-features for
flags="overlay"), so only squashfs, initrd, iso and checksum run again.

- dmsquash + ext4: dracut's dmsquash-live puts a device-mapper snapshot over the ext4 image
  inside the squashfs (`dmsetup table` shows it, / is /dev/mapper/live-rw);
- dmsquash + erofs: dracut's dmsquash-live overlays the EROFS LiveOS/rootfs.img with overlayfs;
- overlay + erofs and overlay + ext4: liveorch's module mounts the image read-only under its
  overlay;
- dmsquash + xfs: the snapshot over an XFS image made from mkfs.xfs's protofile;
- dmsquash's own persistence: rd.live.overlay=LABEL=persist:/LiveOS/overlay.img keeps the
  snapshot's cow on a second disk, and a file written in one boot is there in the next;
- verity_blocks="all", with both flags (on the overlay+ext4 and dmsquash+xfs variants, so
  one build and one boot prove both): the medium's image is read through dm-verity
  (`dmsetup table` shows the verity target). A copy of the dmsquash one with a byte flipped
  inside the root image stops at the menu's check entry with the verity module's message.
The boots run two at a time, each variant's as soon as it is built, while the next one builds."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from scenarios import outcome, output_lines, report_logins

from liveorch.orchestrator.boot import BootMode, BootResult, BootScript, boot_and_login
from liveorch.orchestrator.build import BuildReport
from liveorch.orchestrator.errors import CheckFailed

pytestmark = pytest.mark.slow
PASSWORD = "linux"  # both examples' root password
PROBE = ('echo "ROOT=$(findmnt -n -o SOURCE,FSTYPE /)"; dmsetup table 2>&1; '
         'echo "DRACUT-BASE=$(findmnt -n -o FSTYPE /run/rootfsbase)"; '
         'echo "LIVEORCH-BASE=$(findmnt -n -o FSTYPE /run/liveorch/base)"; '
         'echo probe > /root/written && echo "WROTE=$(cat /root/written)"; '
         'echo "MEDIUM=$(ls /run/initramfs/live/LiveOS 2>/dev/null | tr "\\n" " ")"')


@dataclass(frozen=True)
class Variant:
    name: str
    base: str  # the build whose root it shares: "example" or "features"
    attrs: tuple[str, ...]
    mode: BootMode

    @property
    def filesystem(self) -> str:
        return dict(attr.split("=", 1) for attr in self.attrs)["filesystem"]


VARIANTS = (  # built in this order: the variants with the most boots first
    Variant("dmsquash-ext4", "example", ("filesystem=ext4",), BootMode(uefi=True, disk=False)),
    # verity rides on two of the layouts, so one build and one boot prove both
    Variant("dmsquash-xfs-verity", "example", ("filesystem=xfs", "verity_blocks=all"),
            BootMode(uefi=False, disk=True)),
    Variant("dmsquash-erofs", "example", ("filesystem=erofs", "erofscompression=lz4hc,12"),
            BootMode(uefi=False, disk=False)),
    Variant("overlay-erofs", "features", ("filesystem=erofs",), BootMode(uefi=False, disk=True)),
    Variant("overlay-ext4-verity", "features", ("filesystem=ext4", "verity_blocks=all"),
            BootMode(uefi=False, disk=False)),
)


def _persistence_disk(work: Path) -> Path:
    """A second disk (ext4, label persist) with an empty 512 MiB file for the snapshot's cow,
    as dracut's rd.live.overlay=<devspec>:<path> expects it (made with mkfs.ext4 -d: no mount)."""
    content = work / "content" / "LiveOS"
    content.mkdir(parents=True)
    with (content / "overlay.img").open("wb") as cow:
        cow.truncate(512 << 20)
    disk = work / "persist.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "persist", "-d", str(work / "content"), str(disk), "700M"],
                   check=True)
    return disk


def _dmsquash_persistence(iso: Path, work: Path, iso_files: Callable[[Path, list[str], Path], None]
                          ) -> list[BootResult]:
    """dmsquash's own persistence: the snapshot's cow on a device, kept across a reboot."""
    disk = _persistence_disk(work)
    iso_files(iso, ["boot/x86_64/loader/linux", "boot/x86_64/loader/initrd"], work)
    cmdline = ("root=live:CDLABEL=BOOKWORM_LIVE rd.live.image rd.live.overlay=LABEL=persist:/LiveOS/overlay.img "
               "console=ttyS0,115200")
    script = BootScript(qemu_extra=("-kernel", str(work / "linux"), "-initrd", str(work / "initrd"),
                                    "-append", cmdline, "-drive", f"file={disk},format=raw,if=virtio"))
    return [boot_and_login(iso, BootMode(uefi=False, disk=False), PASSWORD, command=command, script=script,
                           log=work / f"boot{number}.log")
            for number, command in ((1, f"{PROBE}; echo kept > /root/kept.txt; sync"),
                                    (2, f"{PROBE}; echo \"KEPT=$(cat /root/kept.txt)\""))]


def _tampered_verity(iso: Path, work: Path) -> list[BootResult]:
    """A byte flipped in the middle of the ISO (inside LiveOS/squashfs.img, which fills most
    of it), booted from the menu's check entry (rd.liveorch.verity.check): the boot must stop."""
    data = bytearray(iso.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered = work / "tampered.iso"
    tampered.write_bytes(data)
    log = work / "tampered.log"
    try:
        boot_and_login(tampered, BootMode(uefi=False, disk=False), PASSWORD, script=BootScript(menu_downs=1),
                       log=log, timeout=400)
    except CheckFailed:
        return []
    raise AssertionError(f"the tampered verity ISO booted to a login; see {log}")


def _boot_jobs(variant: Variant, report: BuildReport, logs: Path, tmp_path_factory: pytest.TempPathFactory,
               iso_files: Callable[[Path, list[str], Path], None]) -> dict[str, Callable[[], list[BootResult]]]:
    """The variant booted once; the ext4 one twice more with a persistent cow, and a tampered
    copy of the dmsquash verity one."""
    jobs: dict[str, Callable[[], list[BootResult]]] = {
        variant.name: lambda: [boot_and_login(report.iso, variant.mode, PASSWORD, command=PROBE,
                                              log=logs / f"{variant.name}.log")]}
    if variant.name == "dmsquash-ext4":
        jobs["dmsquash-persistence"] = lambda: _dmsquash_persistence(report.iso, tmp_path_factory.mktemp("persist"),
                                                                     iso_files)
    if variant.name == "dmsquash-xfs-verity":
        jobs["tampered-verity"] = lambda: _tampered_verity(report.iso, logs)
    return jobs


@pytest.fixture(scope="module")
def layouts(example_build: BuildReport, features_build: BuildReport, example_variant: Callable[..., BuildReport],
            features_variant: Callable[..., BuildReport], tmp_path_factory: pytest.TempPathFactory,
            iso_files: Callable[[Path, list[str], Path], None]
            ) -> tuple[dict[str, BuildReport], dict[str, list[BootResult] | Exception]]:
    """Each variant built in turn, its boots started as soon as it is there, two at a time,
    while the next one builds: a boot leaves its core idle much of the time (firmware, menu,
    waiting for the login), and the builds fill it."""
    make = {"example": example_variant, "features": features_variant}
    logs = tmp_path_factory.mktemp("layout-serial")
    builds: dict[str, BuildReport] = {}
    futures: dict[str, Future[list[BootResult] | Exception]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for variant in VARIANTS:
            builds[variant.name] = make[variant.base](*variant.attrs)
            for name, job in _boot_jobs(variant, builds[variant.name], logs, tmp_path_factory, iso_files).items():
                futures[name] = pool.submit(outcome, job)
    results = {name: future.result() for name, future in futures.items()}
    report_logins(results)
    return builds, results


@pytest.fixture(scope="module")
def builds(layouts: tuple[dict[str, BuildReport], dict[str, list[BootResult] | Exception]]) -> dict[str, BuildReport]:
    return layouts[0]


@pytest.fixture(scope="module")
def boots(layouts: tuple[dict[str, BuildReport], dict[str, list[BootResult] | Exception]]
          ) -> dict[str, list[BootResult] | Exception]:
    return layouts[1]


def _output(boots: dict[str, list[BootResult] | Exception], name: str, boot: int = 0) -> list[str]:
    result = boots[name]
    if isinstance(result, Exception):
        raise result
    return output_lines(result[boot])


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_a_variant_reuses_the_root(builds: dict[str, BuildReport], variant: Variant) -> None:
    ran = {stage.stage for stage in builds[variant.name].stages if not stage.cached}
    assert ran <= {"squashfs", "initrd", "iso", "checksum"} and "squashfs" in ran, ran


def _value(lines: list[str], label: str) -> str:
    return next((line.split("=", 1)[1].strip() for line in lines if line.startswith(f"{label}=")), "")


def test_dmsquash_ext4_boots_on_a_device_mapper_snapshot(boots: dict[str, list[BootResult] | Exception]) -> None:
    lines = _output(boots, "dmsquash-ext4")
    assert _value(lines, "ROOT") == "/dev/mapper/live-rw ext4", lines
    assert any(line.startswith("live-rw: 0 ") and " snapshot " in line for line in lines), lines
    assert _value(lines, "WROTE") == "probe"
    assert _value(lines, "MEDIUM").split() == ["squashfs.img"]


def test_dmsquash_keeps_its_snapshot_cow_on_a_device_across_a_reboot(
        boots: dict[str, list[BootResult] | Exception]) -> None:
    first, second = _output(boots, "dmsquash-persistence", 0), _output(boots, "dmsquash-persistence", 1)
    for lines in (first, second):
        assert _value(lines, "ROOT") == "/dev/mapper/live-rw ext4", lines
        assert any(line.startswith("live-rw: 0 ") and " snapshot " in line for line in lines), lines
    assert _value(second, "KEPT") == "kept", second


def test_dmsquash_erofs_boots_on_overlayfs(boots: dict[str, list[BootResult] | Exception]) -> None:
    lines = _output(boots, "dmsquash-erofs")
    assert _value(lines, "ROOT").endswith(" overlay"), lines
    assert _value(lines, "DRACUT-BASE") == "erofs", lines
    assert _value(lines, "WROTE") == "probe"
    assert _value(lines, "MEDIUM").split() == ["rootfs.img"]


@pytest.mark.parametrize(("name", "fstype"), [("overlay-erofs", "erofs"), ("overlay-ext4-verity", "ext4")])
def test_overlay_module_mounts_the_image_under_its_overlay(boots: dict[str, list[BootResult] | Exception], name: str,
                                                            fstype: str) -> None:
    lines = _output(boots, name)
    assert _value(lines, "ROOT") == "liveorch-live overlay", lines
    assert _value(lines, "LIVEORCH-BASE") == fstype, lines
    assert _value(lines, "WROTE") == "probe"


@pytest.mark.parametrize("name", ["overlay-ext4-verity", "dmsquash-xfs-verity"])
def test_verity_opens_the_root_image_through_dm_verity(boots: dict[str, list[BootResult] | Exception],
                                                       name: str) -> None:
    lines = _output(boots, name)
    assert any(line.startswith("live-verity: 0 ") and " verity 1 " in line for line in lines), lines
    assert _value(lines, "WROTE") == "probe"


def test_dmsquash_xfs_boots_on_a_snapshot_over_the_verity_device(
        boots: dict[str, list[BootResult] | Exception]) -> None:
    """dmsquash-live took the verity device as its medium and snapshotted the XFS image in it."""
    lines = _output(boots, "dmsquash-xfs-verity")
    assert _value(lines, "ROOT") == "/dev/mapper/live-rw xfs", lines
    assert any(line.startswith("live-rw: 0 ") and " snapshot " in line for line in lines), lines
    assert _value(lines, "MEDIUM").split() == ["squashfs.img", "squashfs.img.verity"], lines


def test_a_byte_flipped_in_the_verity_root_stops_the_boot(boots: dict[str, list[BootResult] | Exception],
                                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    result = boots["tampered-verity"]
    if isinstance(result, Exception):
        raise result
    log = next(tmp_path_factory.getbasetemp().glob("layout-serial*/tampered.log"))
    transcript = log.read_text(errors="replace")
    assert "verity check FAILED" in transcript, transcript[-3000:]
    assert "device-mapper: verity" in transcript and "is corrupted" in transcript, transcript[-3000:]


def test_the_report_records_the_layout(builds: dict[str, BuildReport]) -> None:
    for variant in VARIANTS:
        report = json.loads(next(builds[variant.name].iso.parent.glob("*.report.json")).read_text())
        assert report["live_root"]["filesystem"] == variant.filesystem
        assert report["live_root"]["verity_blocks"] == ("all" if "verity_blocks=all" in variant.attrs else None)
