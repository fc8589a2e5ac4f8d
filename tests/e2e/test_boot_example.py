"""The bundled example, built for real and booted in QEMU four ways, plus from CD with Secure
Boot enforced (the example has firmware="uefi"), logged in on the serial console: the only
proof that the ISO works."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pytest

from liveorch.orchestrator.boot import BOOT_MODES, SECURE_BOOT_EFIVAR, BootMode, BootResult, boot_and_login
from liveorch.orchestrator.build import BuildReport

pytestmark = pytest.mark.slow
EXAMPLE_PASSWORD = "linux"  # examples/bookworm-live/config.xml
# The SecureBoot variable is 4 attribute bytes and the state: 1 when the firmware enforced it.
PROBE = ("cat /proc/cmdline; findmnt -n -o FSTYPE /; id -un; "
         "test -d /sys/firmware/efi && echo FIRMWARE=uefi || echo FIRMWARE=bios; "
         f"printf 'SECUREBOOT=%s\\n' \"$(od -An -t u1 -j4 -N1 {SECURE_BOOT_EFIVAR} 2>/dev/null | tr -d ' ')\"; "
         "dmesg | grep -o 'Secure boot enabled'; cat /sys/kernel/security/lockdown")
# A second command, as `liveorch test --command` runs it: its own exit code, read over the console.
FAILING = "echo before-exit; exit 3"
SECURE_BOOT_CD = BootMode(uefi=True, disk=False, secure_boot=True)
MODES = (*BOOT_MODES, SECURE_BOOT_CD)


@pytest.fixture(scope="module")
def boots(example_build: BuildReport, tmp_path_factory: pytest.TempPathFactory,
          start_features_build: Callable[[], Future[BuildReport]]) -> dict[str, BootResult | Exception]:
    """All five boots, two at a time (one emulated CPU each on a 2-core machine), while the
    kiwi-features build that later modules boot runs beside them; it is waited for here, so
    no build of it still runs when the next modules look at the test volume."""
    logs = tmp_path_factory.mktemp("serial")
    features = start_features_build()

    def boot(mode: BootMode) -> BootResult | Exception:
        try:
            return boot_and_login(example_build.iso, mode, EXAMPLE_PASSWORD, command=[PROBE, FAILING],
                                  log=logs / f"{mode.name}.log")
        except Exception as error:  # reported by the test of that mode
            return error

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip([m.name for m in MODES], pool.map(boot, MODES), strict=True))
    wait([features])  # its error, if any, is raised where features_build is used
    for name, result in results.items():
        if isinstance(result, BootResult):
            print(f"{name}: login prompt after {result.seconds_to_login:.0f} s")
    return results


@pytest.mark.parametrize("mode", MODES, ids=[m.name for m in MODES])
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
    assert ("SECUREBOOT=1" in output) == mode.secure_boot
    probe, failing = result.commands
    assert probe.exit_code == 0 and (failing.output, failing.exit_code) == ("before-exit\n", 3)
    assert "\x1b" not in result.transcript and "\r" not in result.transcript, "the transcript is plain text"


def test_example_boots_with_secure_boot_enforced(boots: dict[str, BootResult | Exception]) -> None:
    """Firmware, shim, GRUB and kernel all verified: the firmware says Secure Boot is on, and
    the kernel, started by the signed GRUB, saw it and locked itself down."""
    result = boots[SECURE_BOOT_CD.name]
    if isinstance(result, Exception):
        raise result
    output = result.command_output.replace("\r", "")
    assert "\nSECUREBOOT=1\n" in output
    assert "\nSecure boot enabled\n" in output
    assert "[integrity]" in output
    assert "EFI stub: UEFI Secure Boot is enabled." in result.transcript


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
