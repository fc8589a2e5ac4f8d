"""run --pxe: network live boot over QEMU's user network, each bundle served by an HTTP server
this test runs on 127.0.0.1 (the guest's 10.0.2.2). Nothing leaves the machine.

QEMU's built-in TFTP serves the bundle's directory and DHCP names the boot file, so the NIC's
iPXE ROM loads the kernel and initrd; the initrd brings the network up with DHCP and fetches
the image the kernel command line names. The examples carry dracut-network and curl, so each
bundle re-runs only the initrd, iso and checksum stages of the suite's shared builds, once per
example; every other variant (URL, image kind, appended parameters) changes only the
exported configs. Boots run two at a time:

- kiwi-features (flags="overlay"), BIOS: the ISO itself by URL, deployed to a blank disk
  (rd.kiwi.live.system) with persistence; a file is written.
- then that disk on its own, with no network at all: the file is still there.
- kiwi-features: a truncated ISO on the server is refused before anything is mounted.
- the example (flags="dmsquash"), UEFI: OVMF's own PXE client (the iPXE ROM left out, as on a
  PC) loads bootx64.efi; that GRUB reads grub.cfg, the kernel and the initrd by TFTP, and
  dracut's livenet fetches the ISO by URL, which dmsquash-live checks (checkisomd5) and boots.
- kiwi-features over AoE (root=live:aoe:/dev/etherd/e0.2): the bare squashfs of the
  --pxe-image squashfs bundle exported by vblade on a tap device the test makes and removes
  (tests/e2e/aoe_export.py), booted with the bundle's kernel and initrd; the download of the
  bare squashfs itself goes through the same module code (bare_root) and is not booted again.

The boots run in two lanes, so the two cores stay busy: the deployment and then the deployed
disk in one; the short refusal, the example's bundle (built beside the deployment boot), UEFI,
then AoE, in the other.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aoe_export import SHELF, skip_reason, tap_device, vblade_export

from liveorch.orchestrator.boot import BootMode, BootResult, BootScript, boot_and_login, pxe_nic, uefi_pxe_devices
from liveorch.orchestrator.build import BuildOptions, BuildReport, run_build
from liveorch.orchestrator.errors import CheckFailed
from liveorch.orchestrator.pxe import NetworkImage

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookworm-live" / "config.xml"
PASSWORD = "linux"  # root's, in both examples
BIOS = BootMode(uefi=False, disk=False)
UEFI = BootMode(uefi=True, disk=False)
DEPLOY = "rd.kiwi.live.system=/dev/vda rd.live.overlay.persistent rd.live.overlay.cowfs=ext4"
# QEMU's PC always has an IDE CD drive: it must be empty (opening it fails: no medium).
WHERE = ("cat /proc/cmdline; findmnt -n -o SOURCE,FSTYPE /; "
         "head -c 2048 /dev/sr0 > /dev/null 2>&1 && echo CD-HAS-MEDIUM || echo CD-EMPTY; "
         "grep -h . /sys/class/net/*/operstate | sed 's/^/NET: /'")
FIRST = [WHERE, "lsblk -n -o NAME,LABEL /dev/vda | sed 's/^/DISK: /'",
         "echo written-in-the-first-boot > /root/deployed.txt; sync"]
SECOND = [WHERE, "cat /root/deployed.txt; ls /sys/class/net | sed 's/^/IFACE: /'"]
FIRMWARE = "test -d /sys/firmware/efi && echo FIRMWARE-UEFI || echo FIRMWARE-BIOS"
AOE_SLOT, AOE_MAC = 2, "52:54:00:a0:e0:02"  # vblade answers only this MAC
AOE_COMMAND = (f"{WHERE}; findmnt -n -o SOURCE /run/liveorch/medium | sed 's/^/MEDIUM: /'; "
               "losetup -n -l -O BACK-FILE | sed 's/^/LOOP: /'; ls /dev/vda /dev/sda 2>&1 | sed 's/^/DISKS: /'")


class BundleServer:
    """An HTTP server on 127.0.0.1 (an ephemeral port) for one bundle, recording each request.
    It starts before the build, because its URL goes into the bundle's configs; the bundle's
    directory is known once the build has written it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.directory = Path("/nonexistent")
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(server.directory), **kwargs)

            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                server.requests.append(f"{self.command} {self.path} {code}")

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def guest_url(self) -> str:
        return f"http://10.0.2.2:{self.http.server_address[1]}/"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@dataclass
class Variant:
    """One bundle and how the test boots it."""

    report: BuildReport
    server: BundleServer
    work: Path
    boot: BootResult | Exception | None = None

    @property
    def bundle(self) -> Path:
        assert self.report.pxe is not None
        return self.report.pxe

    def record(self) -> dict[str, Any]:
        report = self.report.iso.with_name(self.report.iso.name.removesuffix(".iso") + ".report.json")
        return json.loads(report.read_text())["pxe"]


def _boot(variant: Variant, commands: list[str], qemu_extra: tuple[str, ...] = (), network: bool = True,
          log: str = "serial.log") -> BootResult | Exception:
    script = BootScript(attach_iso=False, nic=pxe_nic(variant.bundle) if network else None, qemu_extra=qemu_extra)
    try:
        return boot_and_login(variant.report.iso, BIOS, PASSWORD, command=commands, script=script,
                              log=variant.work / log)
    except Exception as error:  # reported by the tests of this variant
        return error


def _uefi_boot(variant: Variant) -> BootResult | Exception:
    """No -nic: the PXE NIC comes from uefi_pxe_devices (OVMF's own PXE client, tried first)."""
    script = BootScript(attach_iso=False, qemu_extra=uefi_pxe_devices(variant.bundle))
    try:
        return boot_and_login(variant.report.iso, UEFI, PASSWORD, command=[WHERE, FIRMWARE], script=script,
                              log=variant.work / "uefi.serial.log")
    except Exception as error:  # reported by the UEFI test
        return error


def _aoe_boot(variant: Variant) -> BootResult | Exception:
    """The bundle's kernel and initrd directly, the bare squashfs as AoE shelf 0 slot 2."""
    if skip_reason() is not None:
        return pytest.skip.Exception(str(skip_reason()))
    tap = f"lo-aoe{os.getpid() % 10000}"
    cmdline = f"root=live:aoe:/dev/etherd/e{SHELF}.{AOE_SLOT} rd.live.timeout=120 console=ttyS0,115200"
    script = BootScript(attach_iso=False,
                        nic=f"tap,ifname={tap},script=no,downscript=no,model=virtio-net-pci,mac={AOE_MAC}",
                        qemu_extra=("-kernel", str(variant.bundle / "vmlinuz"),
                                    "-initrd", str(variant.bundle / "initrd.img"), "-append", cmdline))
    try:
        with tap_device(tap), vblade_export(AOE_SLOT, tap, variant.bundle / "squashfs.img", AOE_MAC,
                                            variant.work / "vblade.log"):
            return boot_and_login(variant.report.iso, BIOS, PASSWORD, command=AOE_COMMAND, script=script,
                                  log=variant.work / "aoe.serial.log")
    except Exception as error:  # reported by the AoE test
        return error


def _truncated_copy(variant: Variant) -> None:
    """The server's ISO cut short by a MiB, as an interrupted upload leaves it; its .sha256 stays."""
    copy = variant.work / "truncated"
    shutil.copytree(variant.bundle, copy)
    iso = copy / variant.report.iso.name
    with iso.open("r+b") as file:
        file.truncate(iso.stat().st_size - 1024 * 1024)
    variant.server.directory = copy


def _deploy_lane(deploy: Variant) -> dict[str, BootResult | Exception]:
    """The ISO by URL onto a blank disk, then that disk alone with no network."""
    disk = deploy.work / "disk.raw"
    subprocess.run(["truncate", "-s", "768M", str(disk)], check=True)
    on_disk = ("-drive", f"file={disk},format=raw,if=virtio")
    first = _boot(deploy, FIRST, (*on_disk, "-boot", "order=n"))
    second = _boot(deploy, SECOND, on_disk, network=False, log="second.serial.log")
    return {"deploy": first, "second": second}


def _short_lane(variants: dict[str, Variant], build_example: Callable[[], Variant]
                ) -> dict[str, BootResult | Exception]:
    """The short boots: the truncated ISO refused, then (the example's bundle built meanwhile,
    beside the deployment boot) UEFI, then AoE."""
    refused = _boot(variants["truncated"], [WHERE])
    variants["uefi"] = build_example()
    return {"truncated": refused, "uefi": _uefi_boot(variants["uefi"]), "aoe": _aoe_boot(variants["aoe"])}


@pytest.fixture(scope="module")
def network_boots(example_build: BuildReport, features_build: BuildReport, test_volume: str,
                  features_variant: Callable[..., BuildReport], tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[dict[str, Variant]]:
    kinds = {"deploy": {"pxe_append": DEPLOY}, "truncated": {}, "aoe": {"pxe_image": NetworkImage.SQUASHFS}}
    servers = {name: BundleServer() for name in [*kinds, "uefi"]}

    def build_example() -> Variant:
        work = tmp_path_factory.mktemp("pxe-uefi")
        example = run_build(EXAMPLE, BuildOptions(target_dir=work / "out", volume=test_volume,
                                                  pxe_url=servers["uefi"].guest_url), print)
        servers["uefi"].directory = example.pxe or Path("/nonexistent")
        return Variant(example, servers["uefi"], work)

    try:
        variants = {name: Variant(features_variant(pxe_url=servers[name].guest_url, **options), servers[name],
                                  tmp_path_factory.mktemp(f"pxe-{name}")) for name, options in kinds.items()}
        for variant in variants.values():
            variant.server.directory = variant.bundle
        _truncated_copy(variants["truncated"])
        with ThreadPoolExecutor(max_workers=2) as pool:
            lanes = [pool.submit(_deploy_lane, variants["deploy"]), pool.submit(_short_lane, variants, build_example)]
            boots = {name: boot for lane in lanes for name, boot in lane.result().items()}
        variants["second"] = Variant(variants["deploy"].report, variants["deploy"].server, variants["deploy"].work)
        for name, boot in boots.items():
            variants[name].boot = boot
        yield variants
    finally:
        for server in servers.values():
            server.close()


def _booted(variant: Variant) -> BootResult:
    if isinstance(variant.boot, Exception):
        raise variant.boot
    assert variant.boot is not None
    return variant.boot


def test_bundles_rerun_only_the_late_stages(network_boots: dict[str, Variant]) -> None:
    for name, variant in network_boots.items():
        assert {s.stage for s in variant.report.stages if not s.cached} <= {"initrd", "iso", "checksum"}, name
    assert all(s.cached for s in network_boots["aoe"].report.stages), "another image kind is only an export"


def test_iso_by_url_is_checked_then_deployed_to_the_disk(network_boots: dict[str, Variant]) -> None:
    variant = network_boots["deploy"]
    boot = _booted(variant)
    out = boot.command_output.replace("\r", "")
    assert f"root=live:{variant.server.guest_url}{variant.report.iso.name}" in out
    assert "rd.kiwi.live.system=/dev/vda" in out
    assert "CD-EMPTY" in out
    assert any(r.startswith(f"GET /{variant.report.iso.name} 200") for r in variant.server.requests)
    assert "download verified: sha256 matches" in boot.transcript
    assert "deployed to /dev/vda" in boot.transcript
    assert "DISK: vda" in out and "liveorch-cow" in out, "the persistence partition is on the deployed disk"
    print(f"deploy: login after {boot.seconds_to_login:.0f} s over the network")


def test_the_deployed_disk_boots_alone_and_keeps_the_file(network_boots: dict[str, Variant]) -> None:
    boot = _booted(network_boots["second"])
    out = boot.command_output.replace("\r", "")
    assert "written-in-the-first-boot" in out
    assert "root=live:CDLABEL=KIWI_FEATURES rd.live.overlay.persistent" in out, "the disk's own boot menu"
    assert "ip=dhcp" not in out
    assert [line for line in out.splitlines() if line.startswith("IFACE: ")] == ["IFACE: lo"], "no network at all"
    assert "persistent: using /dev/vda" in boot.transcript
    print(f"deployed disk: login after {boot.seconds_to_login:.0f} s with no network")


def test_a_truncated_iso_is_refused_before_it_is_used(network_boots: dict[str, Variant]) -> None:
    variant = network_boots["truncated"]
    assert isinstance(variant.boot, CheckFailed), "a truncated ISO must not boot"
    transcript = (variant.work / "serial.log").read_text()
    assert f"the download of {variant.server.guest_url}{variant.report.iso.name} is damaged or incomplete" \
        in transcript
    assert "live root ready" not in transcript


def test_aoe_export_of_the_root_image_boots_it_directly(network_boots: dict[str, Variant]) -> None:
    boot = _booted(network_boots["aoe"])
    out = boot.command_output.replace("\r", "")
    assert f"root=live:aoe:/dev/etherd/e0.{AOE_SLOT}" in out
    assert re.search(r"^liveorch-live\s+overlay$", out, re.MULTILINE), "the root is liveorch's overlay"
    assert f"LOOP: /dev/etherd/e0.{AOE_SLOT}" in out, "the root image is the AoE device itself"
    assert "MEDIUM:" not in out, "no medium mounted around the root image"
    assert "DISKS: ls: cannot access '/dev/vda'" in out and "DISKS: ls: cannot access '/dev/sda'" in out
    assert f"live root ready: /dev/etherd/e0.{AOE_SLOT} (the root image itself)" in boot.transcript
    print(f"AoE: login after {boot.seconds_to_login:.0f} s")


def test_uefi_boots_the_iso_by_url_through_bootx64_efi(network_boots: dict[str, Variant]) -> None:
    variant = network_boots["uefi"]
    boot = _booted(variant)
    out = boot.command_output.replace("\r", "")
    assert "FIRMWARE-UEFI" in out
    assert "Start PXE over IPv4" in boot.transcript, "OVMF's own PXE client, the NIC first"
    assert "Loading (tftp,10.0.2.2)/grub.cfg" in boot.transcript, "bootx64.efi read the bundle's grub.cfg"
    assert "BOOT_IMAGE=(tftp,10.0.2.2)/vmlinuz" in out, "GRUB loaded the kernel by TFTP"
    assert f"root=live:{variant.server.guest_url}{variant.report.iso.name} rd.live.image" in out
    assert "CD-EMPTY" in out
    assert "overlay" in out, "dmsquash-live's overlay over the squashfs in the downloaded ISO"
    assert any(r.startswith(f"GET /{variant.report.iso.name} 200") for r in variant.server.requests)
    print(f"uefi: login after {boot.seconds_to_login:.0f} s over the network")


def test_report_describes_the_bundle(network_boots: dict[str, Variant]) -> None:
    variant = network_boots["deploy"]
    record = variant.record()
    iso = variant.report.iso.name
    assert record["directory"] == variant.bundle.name
    assert record["image_url"] == f"{variant.server.guest_url}{iso}"
    assert record["kernel_cmdline"].endswith(DEPLOY)
    assert {"vmlinuz", "initrd.img", iso, f"{iso}.sha256", "boot.ipxe", "pxelinux.cfg/default",
            "grub.cfg", "bootx64.efi"} <= set(record["files"])
    iso_stage = next(s for s in json.loads(variant.report.iso.with_name(iso.removesuffix(".iso") + ".report.json")
                                           .read_text())["stages"] if s["stage"] == "iso")
    assert record["files"]["bootx64.efi"]["sha256"] == iso_stage["outputs"]["bootx64.efi"]["sha256"]
    assert record["files"][iso]["sha256"] == variant.report.sha256
    assert (variant.bundle / f"{iso}.sha256").read_text() == f"{variant.report.sha256}  {iso}\n"
