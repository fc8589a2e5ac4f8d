"""QEMU command lines of the boot modes, Secure Boot included (no QEMU is started)."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from liveorch.orchestrator import boot
from liveorch.orchestrator.boot import BOOT_MODES, BootMode, qemu_argv
from liveorch.orchestrator.errors import LiveorchError


@pytest.fixture
def firmware(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setattr(boot.shutil, "which", lambda name: f"/usr/bin/{name}")
    code, variables = tmp_path / "OVMF_CODE_4M.secboot.fd", tmp_path / "OVMF_VARS_4M.ms.fd"
    for path in (code, variables, tmp_path / "OVMF.fd"):
        path.write_bytes(b"")
    monkeypatch.setattr(boot, "OVMF_SECURE_BOOT", (code, variables))
    monkeypatch.setattr(boot, "OVMF_CANDIDATES", (str(tmp_path / "OVMF.fd"),))
    return code, variables


def test_mode_names() -> None:
    assert [m.name for m in BOOT_MODES] == ["bios-cd", "uefi-cd", "bios-disk", "uefi-disk"]
    assert BootMode(uefi=True, disk=False, secure_boot=True).name == "uefi-secureboot-cd"
    assert BootMode(uefi=True, disk=True, secure_boot=True).name == "uefi-secureboot-disk"


def test_secure_boot_needs_uefi() -> None:
    with pytest.raises(LiveorchError, match="Secure Boot needs UEFI"):
        BootMode(uefi=False, disk=False, secure_boot=True)


def test_secure_boot_runs_ovmf_secure_boot_build_with_smm_and_a_throwaway_variable_store(
        firmware: tuple[Path, Path]) -> None:
    code, variables = firmware
    argv = qemu_argv(Path("live.iso"), BootMode(uefi=True, disk=False, secure_boot=True))
    assert "-bios" not in argv
    pairs = list(pairwise(argv))
    assert ("-machine", "q35,smm=on") in pairs
    assert ("-global", "driver=cfi.pflash01,property=secure,value=on") in pairs
    assert ("-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}") in pairs
    assert ("-drive", f"if=pflash,format=raw,unit=1,snapshot=on,file={variables}") in pairs
    assert argv[-2:] == ["-drive", "file=live.iso,media=cdrom,readonly=on,if=ide"]


def test_plain_uefi_keeps_the_ovmf_image(firmware: tuple[Path, Path]) -> None:
    argv = qemu_argv(Path("live.iso"), BootMode(uefi=True, disk=True))
    assert "-bios" in argv
    assert not [a for a in argv if "pflash" in a or "smm" in a]


def test_missing_secure_boot_firmware_says_what_to_install(firmware: tuple[Path, Path]) -> None:
    firmware[1].unlink()
    with pytest.raises(LiveorchError, match="no OVMF Secure Boot firmware") as caught:
        qemu_argv(Path("live.iso"), BootMode(uefi=True, disk=False, secure_boot=True))
    assert caught.value.hint == "apt-get install ovmf"
