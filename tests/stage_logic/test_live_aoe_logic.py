"""liveorch-live-aoe (root=live:aoe:/dev/etherd/e<shelf>.<slot>): the refusals a user can meet
before any AoE target answers, run in the host's sh (dash on Debian, like the initrd's).

The harness replaces only what would touch the host: modprobe (the host must not load
aoe), ip (no link of the host may change state), udevadm and sleep; as root it runs as
nobody, so nothing reaches the host's kernel log. The boot itself, with a
real vblade target, is tests/e2e/test_aoe_boot.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

AOE_SCRIPT = Path(__file__).resolve().parents[2] / "stages/dracut/90liveorch-live/liveorch-live-aoe.sh"
MODULE_SETUP = AOE_SCRIPT.with_name("module-setup.sh")
ROOT_SCRIPT = AOE_SCRIPT.with_name("liveorch-live-root.sh")


def as_unprivileged() -> list[str]:
    """As root, the harness runs as nobody: the script's messages then fall back to stderr,
    as they do where an initrd has no kernel log, instead of landing in the host's."""
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []


def run_aoe(device: str, modprobe_works: bool, timeout_s: int = 1) -> subprocess.CompletedProcess[str]:
    harness = (f"getarg() {{ [ \"$1\" = rd.live.timeout= ] && echo {timeout_s}; }}\n"
               f"modprobe() {{ return {0 if modprobe_works else 1}; }}\n"
               "ip() { :; }\nudevadm() { :; }\nsleep() { :; }\n"
               f"set -- '{device}'\n{AOE_SCRIPT.read_text()}")
    return subprocess.run([*as_unprivileged(), "sh", "-c", harness], capture_output=True, text=True, timeout=30)


def test_a_device_outside_etherd_is_refused_by_name() -> None:
    done = run_aoe("/dev/sda", modprobe_works=True)
    assert done.returncode == 1
    assert "root=live:aoe:/dev/sda is not an AoE device: expected /dev/etherd/e<shelf>.<slot>" in done.stderr
    assert done.stdout == "", "stdout carries only the device's path"


def test_an_initrd_without_the_driver_says_how_to_get_it() -> None:
    done = run_aoe("/dev/etherd/e0.1", modprobe_works=False)
    assert done.returncode == 1
    assert "this initrd has no aoe driver (build with liveorch run --pxe" in done.stderr


def test_a_target_that_never_answers_is_named_after_the_timeout() -> None:
    done = run_aoe("/dev/etherd/e7.3", modprobe_works=True, timeout_s=1)
    assert done.returncode == 1, done.stderr
    assert "looking for the AoE target shelf 7 slot 3 (/dev/etherd/e7.3)" in done.stderr
    assert "the AoE device /dev/etherd/e7.3 did not appear within 1 s" in done.stderr
    assert "is vblade exporting shelf 7 slot 3 on this Ethernet segment?" in done.stderr
    assert "cannot create" not in done.stderr, "no shell noise from the discovery writes"
    assert done.stdout == ""


def test_the_module_installs_the_script_and_the_root_script_calls_it() -> None:
    """The installed name is the one liveorch-live-root's live_device() calls."""
    assert 'inst_script "$moddir/liveorch-live-aoe.sh" "/sbin/liveorch-live-aoe"' in MODULE_SETUP.read_text()
    assert 'aoe:*) liveorch-live-aoe "${_root#aoe:}" ;;' in ROOT_SCRIPT.read_text()
