"""run --pxe: the network-boot bundle, booted over QEMU's user network with no CD and no disk.

QEMU's built-in TFTP serves the bundle's directory and DHCP names boot.ipxe, so the NIC's
iPXE ROM loads the kernel and initrd; the initrd brings the network up with DHCP and
fetches squashfs.img into RAM from an HTTP server this test runs on 127.0.0.1 (the guest's
10.0.2.2). Both live flags: the example (dmsquash, dracut's livenet) and kiwi-features
(overlay, liveorch's own module). The examples carry dracut-network and curl, so each
bundle re-runs only the initrd, iso and checksum stages of the suite's shared builds; the
two variants build, then boot, side by side."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from liveorch.orchestrator.boot import BootMode, BootResult, BootScript, boot_and_login, pxe_nic
from liveorch.orchestrator.build import BuildOptions, BuildReport, run_build

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "bookworm-live" / "config.xml"
PASSWORD = {"dmsquash": "linux", "overlay": "linux"}  # root's, in both examples
Outcome = tuple[BuildReport, "BundleServer", BootResult | Exception]
# QEMU's PC always has an IDE CD drive: it must be empty (opening it fails: no medium); no disk at all.
COMMAND = ("cat /proc/cmdline; findmnt -n -o SOURCE,FSTYPE /; "
           "head -c 2048 /dev/sr0 > /dev/null 2>&1 && echo CD-HAS-MEDIUM || echo CD-EMPTY; "
           "ls /dev/vda /dev/sda 2>&1 | sed 's/^/DISKS: /'")


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


def _build(flag: str, url: str, volume: str, target: Path, features_variant: Callable[..., BuildReport]
           ) -> BuildReport:
    if flag == "dmsquash":
        return run_build(EXAMPLE, BuildOptions(target_dir=target, volume=volume, pxe_url=url), print)
    return features_variant(pxe_url=url)


@pytest.fixture(scope="module")
def network_boots(example_build: BuildReport, features_build: BuildReport, test_volume: str,
                  features_variant: Callable[..., BuildReport], tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[dict[str, Outcome]]:
    flags = ("dmsquash", "overlay")
    servers = {flag: BundleServer() for flag in flags}
    work = {flag: tmp_path_factory.mktemp(f"pxe-{flag}") for flag in flags}
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            builds = {flag: pool.submit(_build, flag, servers[flag].guest_url, test_volume, work[flag] / "out",
                                        features_variant) for flag in flags}
            reports = {flag: future.result() for flag, future in builds.items()}
        for flag in flags:
            assert reports[flag].pxe is not None
            servers[flag].directory = reports[flag].pxe

        def boot(flag: str) -> BootResult | Exception:
            bundle = reports[flag].pxe
            assert bundle is not None
            script = BootScript(attach_iso=False, nic=pxe_nic(bundle))
            try:
                return boot_and_login(reports[flag].iso, BootMode(uefi=False, disk=False), PASSWORD[flag],
                                      command=COMMAND, script=script, log=work[flag] / "serial.log")
            except Exception as error:  # reported by the test of this flag
                return error

        with ThreadPoolExecutor(max_workers=2) as pool:
            boots = dict(zip(flags, pool.map(boot, flags), strict=True))
        yield {flag: (reports[flag], servers[flag], boots[flag]) for flag in flags}
    finally:
        for server in servers.values():
            server.close()


def test_bundles_rerun_only_the_late_stages(network_boots: dict[str, Outcome]) -> None:
    for flag, (report, _, _) in network_boots.items():
        assert {s.stage for s in report.stages if not s.cached} <= {"initrd", "iso", "checksum"}, flag


@pytest.mark.parametrize("flag", ["dmsquash", "overlay"])
def test_bundle_boots_over_the_network_with_no_cd_and_no_disk(network_boots: dict[str, Outcome], flag: str) -> None:
    _, server, boot = network_boots[flag]
    if isinstance(boot, Exception):
        raise boot
    out = boot.command_output.replace("\r", "")
    assert f"root=live:{server.guest_url}squashfs.img" in out
    assert "overlay" in out, "the root is the overlay over the downloaded squashfs"
    assert "CD-EMPTY" in out, "no medium in the CD drive"
    assert "DISKS: ls: cannot access '/dev/vda'" in out and "DISKS: ls: cannot access '/dev/sda'" in out
    assert any(r.startswith("GET /squashfs.img 200") for r in server.requests), server.requests
    if flag == "overlay":
        assert "liveorch-live: downloading the live image" in boot.transcript
    print(f"{flag}: login after {boot.seconds_to_login:.0f} s over the network")


def test_report_describes_the_bundle(network_boots: dict[str, Outcome]) -> None:
    report, server, _ = network_boots["overlay"]
    record = json.loads(report.iso.with_name(report.iso.name.removesuffix(".iso") + ".report.json").read_text())
    bundle = record["pxe"]
    assert bundle["directory"] == report.pxe.name
    assert bundle["image_url"] == f"{server.guest_url}squashfs.img"
    assert set(bundle["files"]) == {"vmlinuz", "initrd.img", "squashfs.img", "boot.ipxe", "pxelinux.cfg/default",
                                    "grub.cfg"}
    squashfs = next(s for s in record["stages"] if s["stage"] == "squashfs")
    assert bundle["files"]["squashfs.img"]["sha256"] == squashfs["outputs"]["LiveOS/squashfs.img"]["sha256"]
