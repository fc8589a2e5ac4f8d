"""AoE exports for the network-boot tests: a tap device and vblade on it, made and removed by
the test. The tap link is up with no address and no bridge, and IPv6 is off, so the only
frames on it go between vblade and the guest and nothing leaves the machine; vblade answers
only the guest's MAC and exports read-only."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SHELF = 0


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the AoE boot needs root: it creates a tap device and vblade reads raw frames on it"
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return "no usable /dev/net/tun: a tap device cannot be created"
    return None


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
