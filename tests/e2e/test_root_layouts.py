"""KIWI's iso `filesystem` layouts, built and booted: each variant shares the root of a build
the session already made (the example for flags="dmsquash", kiwi-features for
flags="overlay"), so only squashfs, initrd, iso and checksum run again.

- dmsquash + ext4: dracut's dmsquash-live puts a device-mapper snapshot over the ext4 image
  inside the squashfs (`dmsetup table` shows it, / is /dev/mapper/live-rw);
- dmsquash + erofs: dracut's dmsquash-live overlays the EROFS LiveOS/rootfs.img with overlayfs;
- overlay + erofs and overlay + ext4: liveorch's module mounts the image read-only under its
  overlay.
The four boots run two at a time."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from liveorch.orchestrator.boot import BootMode, BootResult, boot_and_login
from liveorch.orchestrator.build import BuildOptions, BuildReport, run_build
from liveorch.orchestrator.overrides import Overrides

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"
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


VARIANTS = (
    Variant("dmsquash-ext4", "example", ("filesystem=ext4",), BootMode(uefi=True, disk=False)),
    Variant("dmsquash-erofs", "example", ("filesystem=erofs", "erofscompression=lz4hc,12"),
            BootMode(uefi=False, disk=False)),
    Variant("overlay-erofs", "features", ("filesystem=erofs",), BootMode(uefi=False, disk=True)),
    Variant("overlay-ext4", "features", ("filesystem=ext4",), BootMode(uefi=False, disk=False)),
)


@pytest.fixture(scope="module")
def builds(example_build: BuildReport, features_build: BuildReport, features_variant: Callable[..., BuildReport],
           test_volume: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuildReport]:
    built = {}
    for variant in VARIANTS:
        if variant.base == "example":
            options = BuildOptions(target_dir=tmp_path_factory.mktemp(variant.name), volume=test_volume,
                                   overrides=Overrides(type_attrs=list(variant.attrs)))
            built[variant.name] = run_build(EXAMPLE, options, print)
        else:
            built[variant.name] = features_variant(*variant.attrs)
    return built


@pytest.fixture(scope="module")
def boots(builds: dict[str, BuildReport], tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, BootResult | Exception]:
    logs = tmp_path_factory.mktemp("layout-serial")

    def boot(variant: Variant) -> BootResult | Exception:
        try:
            return boot_and_login(builds[variant.name].iso, variant.mode, PASSWORD, command=PROBE,
                                  log=logs / f"{variant.name}.log")
        except Exception as error:  # reported by the test of that variant
            return error

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip([v.name for v in VARIANTS], pool.map(boot, VARIANTS), strict=True))
    for name, result in results.items():
        if isinstance(result, BootResult):
            print(f"{name}: login prompt after {result.seconds_to_login:.0f} s, ISO "
                  f"{builds[name].iso.stat().st_size >> 20} MiB")
    return results


def _output(boots: dict[str, BootResult | Exception], name: str) -> list[str]:
    result = boots[name]
    if isinstance(result, Exception):
        raise result
    return [line.strip() for line in result.command_output.replace("\r", "").splitlines()]


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_a_variant_reuses_the_root(builds: dict[str, BuildReport], variant: Variant) -> None:
    ran = {stage.stage for stage in builds[variant.name].stages if not stage.cached}
    assert ran <= {"squashfs", "initrd", "iso", "checksum"} and "squashfs" in ran, ran


def _value(lines: list[str], label: str) -> str:
    return next((line.split("=", 1)[1].strip() for line in lines if line.startswith(f"{label}=")), "")


def test_dmsquash_ext4_boots_on_a_device_mapper_snapshot(boots: dict[str, BootResult | Exception]) -> None:
    lines = _output(boots, "dmsquash-ext4")
    assert _value(lines, "ROOT") == "/dev/mapper/live-rw ext4", lines
    assert any(line.startswith("live-rw: 0 ") and " snapshot " in line for line in lines), lines
    assert _value(lines, "WROTE") == "probe"
    assert _value(lines, "MEDIUM").split() == ["squashfs.img"]


def test_dmsquash_erofs_boots_on_overlayfs(boots: dict[str, BootResult | Exception]) -> None:
    lines = _output(boots, "dmsquash-erofs")
    assert _value(lines, "ROOT").endswith(" overlay"), lines
    assert _value(lines, "DRACUT-BASE") == "erofs", lines
    assert _value(lines, "WROTE") == "probe"
    assert _value(lines, "MEDIUM").split() == ["rootfs.img"]


@pytest.mark.parametrize(("name", "fstype"), [("overlay-erofs", "erofs"), ("overlay-ext4", "ext4")])
def test_overlay_module_mounts_the_image_under_its_overlay(boots: dict[str, BootResult | Exception], name: str,
                                                            fstype: str) -> None:
    lines = _output(boots, name)
    assert _value(lines, "ROOT") == "liveorch-live overlay", lines
    assert _value(lines, "LIVEORCH-BASE") == fstype, lines
    assert _value(lines, "WROTE") == "probe"


def test_the_report_records_the_layout(builds: dict[str, BuildReport]) -> None:
    for variant in VARIANTS:
        report = json.loads(next(builds[variant.name].iso.parent.glob("*.report.json")).read_text())
        assert report["live_root"]["filesystem"] == variant.attrs[0].split("=")[1]
