"""root=live:aoe:/dev/etherd/e<shelf>.<slot> (KIWI's AoE live boot, flags="overlay"): the live
system's device is an ATA-over-Ethernet export, served by vblade on this host.

Each boot gets its own tap device, created here and removed afterwards: link up, no address,
no bridge, so the only frames on it go between vblade and the guest, and nothing leaves the
machine; vblade answers only the guest's MAC and exports read-only. QEMU boots the
kiwi-features network bundle's kernel and initrd directly (the suite's --pxe-image squashfs
variant, which test_network_boot boots too: only the initrd, iso and checksum stages can
re-run, and none after that test), with no CD and no disk. Two exports, booted side by
side: the ISO itself (what KIWI's AoE boot serves) and the bare root image (the bundle's
squashfs.img)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from liveorch.orchestrator.boot import BootMode, BootResult, BootScript, boot_and_login
from liveorch.orchestrator.build import BuildReport
from liveorch.orchestrator.pxe import NetworkImage

PASSWORD = "linux"  # root's, in kiwi-features
SHELF = 0
# export -> (slot, the guest NIC's MAC, which vblade alone answers)
EXPORTS = {"iso": (1, "52:54:00:a0:e0:01"), "squashfs": (2, "52:54:00:a0:e0:02")}
COMMAND = ("cat /proc/cmdline; findmnt -n -o SOURCE,FSTYPE /; "
           "findmnt -n -o SOURCE /run/liveorch/medium | sed 's/^/MEDIUM: /'; "
           "losetup -n -l -O BACK-FILE | sed 's/^/LOOP: /'; "
           "ls /dev/vda /dev/sda 2>&1 | sed 's/^/DISKS: /'")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the AoE boot needs root: it creates a tap device and vblade reads raw frames on it"
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return "no usable /dev/net/tun: a tap device cannot be created"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextmanager
def tap_device(name: str) -> Iterator[str]:
    """A tap link up with no address and no bridge; IPv6 off, so the host sends nothing on it."""
    _ip("tuntap", "add", "dev", name, "mode", "tap")
    try:
        ipv6 = Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6")
        if ipv6.exists():
            ipv6.write_text("1\n")
        _ip("link", "set", "dev", name, "up")
        yield name
    finally:
        _ip("link", "del", "dev", name)


@contextmanager
def vblade_export(slot: int, tap: str, image: Path, mac: str, log: Path) -> Iterator[None]:
    """vblade SHELF SLOT on the tap, read-only (-r), answering only the guest's MAC (-m)."""
    vblade = shutil.which("vblade")
    if vblade is None:
        pytest.fail("vblade is not installed (apt-get install vblade; .ci/run installs it)")
    with log.open("wb") as out:
        process = subprocess.Popen([vblade, "-r", "-m", mac, str(SHELF), str(slot), tap, str(image)],
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _boot(bundle: Path, export: str, image: Path, work: Path) -> BootResult | Exception:
    slot, mac = EXPORTS[export]
    tap = f"lo-aoe{os.getpid() % 10000}{slot}"
    cmdline = f"root=live:aoe:/dev/etherd/e{SHELF}.{slot} rd.live.timeout=120 console=ttyS0,115200"
    script = BootScript(attach_iso=False,
                        nic=f"tap,ifname={tap},script=no,downscript=no,model=virtio-net-pci,mac={mac}",
                        qemu_extra=("-kernel", str(bundle / "vmlinuz"), "-initrd", str(bundle / "initrd.img"),
                                    "-append", cmdline))
    try:
        with tap_device(tap), vblade_export(slot, tap, image, mac, work / f"vblade-{export}.log"):
            return boot_and_login(image, BootMode(uefi=False, disk=False), PASSWORD, command=COMMAND,
                                  script=script, log=work / f"serial-{export}.log")
    except Exception as error:  # reported by the test of this export
        return error


@pytest.fixture(scope="module")
def aoe_boots(features_variant: Callable[..., BuildReport], tmp_path_factory: pytest.TempPathFactory
              ) -> dict[str, BootResult | Exception]:
    report = features_variant(pxe_url="http://10.0.2.2:8000/", pxe_image=NetworkImage.SQUASHFS)
    assert report.pxe is not None
    images = {"iso": report.iso, "squashfs": report.pxe / "squashfs.img"}
    work = tmp_path_factory.mktemp("aoe")
    with ThreadPoolExecutor(max_workers=len(EXPORTS)) as pool:
        boots = {export: pool.submit(_boot, report.pxe, export, images[export], work) for export in EXPORTS}
        return {export: future.result() for export, future in boots.items()}


def _result(aoe_boots: dict[str, BootResult | Exception], export: str) -> tuple[BootResult, str]:
    boot = aoe_boots[export]
    if isinstance(boot, Exception):
        raise boot
    print(f"AoE export of the {export}: login after {boot.seconds_to_login:.0f} s")
    return boot, boot.command_output.replace("\r", "")


def test_aoe_export_of_the_iso_boots_as_the_live_medium(aoe_boots: dict[str, BootResult | Exception]) -> None:
    boot, out = _result(aoe_boots, "iso")
    assert "root=live:aoe:/dev/etherd/e0.1" in out
    assert re.search(r"^liveorch-live\s+overlay$", out, re.MULTILINE), "the root is liveorch's overlay"
    assert "MEDIUM: /dev/etherd/e0.1" in out, "the ISO on the AoE device is the live medium"
    assert "LOOP: /run/liveorch/medium/LiveOS/squashfs.img" in out, "the root image is read from that medium"
    assert "DISKS: ls: cannot access '/dev/vda'" in out and "DISKS: ls: cannot access '/dev/sda'" in out
    assert "liveorch-live: AoE device /dev/etherd/e0.1 found" in boot.transcript


def test_aoe_export_of_the_root_image_boots_it_directly(aoe_boots: dict[str, BootResult | Exception]) -> None:
    boot, out = _result(aoe_boots, "squashfs")
    assert "root=live:aoe:/dev/etherd/e0.2" in out
    assert re.search(r"^liveorch-live\s+overlay$", out, re.MULTILINE), "the root is liveorch's overlay"
    assert "LOOP: /dev/etherd/e0.2" in out, "the root image is the AoE device itself"
    assert "MEDIUM:" not in out, "no medium mounted around the root image"
    assert "live root ready: /dev/etherd/e0.2 (the root image itself)" in boot.transcript
