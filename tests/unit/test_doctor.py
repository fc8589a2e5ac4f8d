"""`liveorch doctor`'s checks on prepared files: fake /proc/sys trees, device paths, firmware
lists, free-space numbers. The engine itself is exercised for real in the rootless Podman
end-to-end test."""

from __future__ import annotations

from pathlib import Path

import pytest

from liveorch.orchestrator.doctor import (
    FAIL,
    INFO,
    LOW_DISK,
    OK,
    WARN,
    Check,
    EngineFacts,
    check_disk,
    check_engine,
    check_kvm,
    check_mmdebstrap,
    check_ovmf,
    check_ovmf_secure_boot,
    check_target,
    check_tool,
    check_user_namespaces,
    exit_status,
    free_space,
)


def _proc(tmp_path: Path, **values: int) -> Path:
    """A /proc/sys look-alike: keys are paths below it with '__' for '/'."""
    for key, value in values.items():
        path = tmp_path / key.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return tmp_path


def _facts(**changes: object) -> EngineFacts:
    values: dict[str, object] = dict(product="Podman Engine", version="4.3.1", api_version="1.41", rootless=True,
                                     storage="/var/lib/x", storage_free=10**11, has_base_image=False,
                                     has_stage_images=False)
    values.update(changes)
    return EngineFacts(**values)  # type: ignore[arg-type]


def test_user_namespaces_available(tmp_path: Path) -> None:
    checks = check_user_namespaces(_proc(tmp_path, user__max_user_namespaces=63000), needed=True)
    assert [c.status for c in checks] == [OK]
    assert "63000" in checks[0].detail


def test_no_user_namespaces_fails_only_for_a_rootless_engine(tmp_path: Path) -> None:
    proc = _proc(tmp_path, user__max_user_namespaces=0)
    (needed,) = check_user_namespaces(proc, needed=True)
    (optional,) = check_user_namespaces(proc, needed=False)
    assert needed.status == FAIL and optional.status == WARN
    assert needed.fix and "max_user_namespaces" in needed.fix


def test_debian_unprivileged_userns_clone_off(tmp_path: Path) -> None:
    proc = _proc(tmp_path, user__max_user_namespaces=100, kernel__unprivileged_userns_clone=0)
    (check,) = check_user_namespaces(proc, needed=True)
    assert check.status == FAIL
    assert check.fix == "sudo sysctl -w kernel.unprivileged_userns_clone=1"


def test_ubuntu_apparmor_restriction_is_a_warning_with_its_sysctl(tmp_path: Path) -> None:
    proc = _proc(tmp_path, user__max_user_namespaces=100, kernel__unprivileged_userns_clone=1,
                 kernel__apparmor_restrict_unprivileged_userns=1)
    (check,) = check_user_namespaces(proc, needed=True)
    assert check.status == WARN
    assert check.fix == "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"


def test_missing_proc_values_are_not_a_problem(tmp_path: Path) -> None:
    (check,) = check_user_namespaces(tmp_path / "nothing", needed=True)
    assert check.status == OK


def test_kvm_missing_means_emulation(tmp_path: Path) -> None:
    check = check_kvm(tmp_path / "kvm")
    assert check.status == WARN and "emulate" in check.detail and check.fix


def test_kvm_that_does_not_open(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.mkdir()  # opening a directory read-write fails, even for root
    check = check_kvm(device)
    assert check.status == WARN and "does not open" in check.detail


def test_kvm_that_opens_and_starts_a_guest(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    check = check_kvm(device, qemu_problem=lambda: None)
    assert check.status == OK
    assert "`liveorch test --kvm`" in check.detail, "the advice names the verb a boot test uses"


def test_kvm_that_opens_but_qemu_cannot_use(tmp_path: Path) -> None:
    """As on some VMs (this project's development one): /dev/kvm opens, QEMU aborts setting up the CPU."""
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    check = check_kvm(device, qemu_problem=lambda: "QEMU cannot start a KVM guest (error: failed to set MSR)")
    assert check.status == WARN and "failed to set MSR" in check.detail and "leave out --kvm" in check.detail
    assert check.fix


def test_disk_thresholds() -> None:
    assert check_disk("engine disk", "/x", LOW_DISK + 1).status == OK
    low = check_disk("engine disk", "/x", LOW_DISK - 1)
    assert low.status == WARN and low.fix
    assert check_disk("engine disk", None, None).status == INFO


def test_target_not_yet_created_is_measured_on_its_parent(tmp_path: Path) -> None:
    check = check_target(tmp_path / "a" / "b", low=1)
    assert check.status == OK
    assert free_space(tmp_path / "a" / "b") == (tmp_path, free_space(tmp_path)[1])  # type: ignore[index]


def test_target_below_a_file_fails(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    check = check_target(tmp_path / "file" / "out")
    assert check.status == FAIL and check.fix


def test_tools_and_firmware(tmp_path: Path) -> None:
    assert check_tool("qemu", "qemu-system-x86_64", "boot tests", "apt", which=lambda _: None).status == WARN
    assert check_tool("qemu", "qemu-system-x86_64", "boot tests", "apt", which=lambda n: f"/bin/{n}").status == OK
    firmware = tmp_path / "OVMF.fd"
    assert check_ovmf([str(firmware)]).status == WARN
    firmware.write_bytes(b"\0")
    assert check_ovmf([str(tmp_path / "other.fd"), str(firmware)]) == Check("ovmf", OK, str(firmware))
    code, variables = tmp_path / "OVMF_CODE_4M.secboot.fd", tmp_path / "OVMF_VARS_4M.ms.fd"
    code.write_bytes(b"\0")
    missing = check_ovmf_secure_boot([code, variables])
    assert missing.status == WARN and str(variables) in missing.detail and missing.fix == "sudo apt-get install ovmf"
    variables.write_bytes(b"\0")
    assert check_ovmf_secure_boot([code, variables]).status == OK


@pytest.mark.parametrize(("facts", "installed", "status"), [
    (_facts(has_stage_images=True), False, OK),
    (_facts(has_base_image=True), False, OK),
    (_facts(), True, OK),
    (_facts(), False, WARN),
    (None, False, WARN),
])
def test_mmdebstrap_is_needed_only_without_a_base_image(facts: EngineFacts | None, installed: bool,
                                                        status: str) -> None:
    check = check_mmdebstrap(facts, which=lambda _: "/usr/bin/mmdebstrap" if installed else None)
    assert check.status == status


def test_engine_line_and_exit_status() -> None:
    down = check_engine(None, "no container engine answers at unix:///x")
    assert down.status == FAIL and down.fix and "podman-setup.sh" in down.fix
    up = check_engine(_facts())
    assert up == Check("engine", OK, "Podman Engine 4.3.1 (API 1.41), rootless")
    assert exit_status([up, check_kvm(Path("/nonexistent/kvm"))]) == 0
    assert exit_status([down, up]) == 1


def test_only_problems_get_a_fix_line() -> None:
    assert len(Check("kvm", OK, "fine", "unused").lines()) == 1
    warning = Check("kvm", WARN, "slow", "do this").lines()
    assert len(warning) == 2 and warning[1].strip() == "fix: do this"
