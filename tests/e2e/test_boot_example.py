"""The bundled example, built for real and booted in QEMU four ways, logged in on the serial
console: the only proof that the ISO works."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orchestrator.boot import BOOT_MODES, BootMode, BootResult, boot_and_login
from orchestrator.build import BuildReport

pytestmark = pytest.mark.slow
EXAMPLE_PASSWORD = "linux"  # examples/bookworm-live/config.xml
PROBE = ("cat /proc/cmdline; findmnt -n -o FSTYPE /; id -un; "
         "test -d /sys/firmware/efi && echo FIRMWARE=uefi || echo FIRMWARE=bios")


@pytest.fixture(scope="module")
def boots(example_build: BuildReport, tmp_path_factory: pytest.TempPathFactory) -> dict[str, BootResult | Exception]:
    """All four boots, two at a time (one emulated CPU each on a 2-core machine)."""
    logs = tmp_path_factory.mktemp("serial")

    def boot(mode: BootMode) -> BootResult | Exception:
        try:
            return boot_and_login(example_build.iso, mode, EXAMPLE_PASSWORD, command=PROBE,
                                  log=logs / f"{mode.name}.log")
        except Exception as error:  # reported by the test of that mode
            return error

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip([m.name for m in BOOT_MODES], pool.map(boot, BOOT_MODES), strict=True))
    for name, result in results.items():
        if isinstance(result, BootResult):
            print(f"{name}: login prompt after {result.seconds_to_login:.0f} s")
    return results


@pytest.mark.parametrize("mode", BOOT_MODES, ids=[m.name for m in BOOT_MODES])
def test_example_boots_to_a_root_shell(boots: dict[str, BootResult | Exception], mode: BootMode,
                                       example_build: BuildReport) -> None:
    result = boots[mode.name]
    if isinstance(result, Exception):
        raise result
    output = result.command_output
    assert "root=live:CDLABEL=BOOKWORM_LIVE" in output
    assert "console=ttyS0" in output
    assert "\noverlay" in output.replace("\r", ""), "the root should be the live overlay"
    assert "\nroot" in output.replace("\r", "")
    assert f"FIRMWARE={'uefi' if mode.uefi else 'bios'}" in output


def test_example_outputs_follow_kiwi_naming(example_build: BuildReport) -> None:
    target: Path = example_build.iso.parent
    assert example_build.iso.name == "bookworm-live.x86_64-1.0.0.iso"
    sums = (target / "bookworm-live.x86_64-1.0.0.iso.sha256").read_text().split()
    assert sums == [example_build.sha256, example_build.iso.name]
    packages = (target / "bookworm-live.x86_64-1.0.0.packages").read_text().splitlines()
    assert any(line.startswith("linux-image-amd64|None|") and line.endswith("|None|amd64|None|None")
               for line in packages)
    assert all(len(line.split("|")) == 7 for line in packages)
    assert len([p for p in target.iterdir() if p.suffix == ".iso"]) == 1
    assert not [p for p in target.iterdir() if ".partial-" in p.name]
