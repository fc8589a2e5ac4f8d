"""The network part of liveorch's live module (liveorch-live-net.sh), run by the host's shell
on files: the download check against the server's .sha256, and the refusal to wipe a disk
that holds something else. Only dracut's environment is stood in for (getarg, say, fail) and
curl (a copy from a folder standing for the server); blkid, sha256sum and cut are the host's."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "stages" / "dracut" / "90liveorch-live"
URL = "http://10.0.2.2:8000/live.iso"
# dracut's helpers, reading the kernel command line from $CMDLINE; fetch copies from $SERVER.
DRACUT = r"""
getarg() { for w in $CMDLINE; do case "$w" in "$1"*) echo "${w#"$1"}"; return 0 ;; esac; done; return 1; }
getargbool() { for w in $CMDLINE; do [ "$w" = "$2" ] && return 0; done; return 1; }
say() { echo "liveorch-live: $*"; }
fail() { say "$*"; exit 1; }
wait_for_path() { [ -e "$1" ]; }
timeout_s=1
RUN=$WORK/run
mkdir -p "$RUN/ram"
. "$MODULE/liveorch-live-net.sh"
fetch() { cp "$SERVER/${1##*/}" "$2"; }
"""
needs_tools = pytest.mark.skipif(not (shutil.which("blkid") and shutil.which("mkfs.ext4")),
                                 reason="needs blkid and mkfs.ext4 (util-linux, e2fsprogs)")


def _shell(tmp_path: Path, script: str, cmdline: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MODULE": str(MODULE), "WORK": str(tmp_path),
           "SERVER": str(tmp_path / "server"), "CMDLINE": cmdline}
    return subprocess.run(["sh", "-c", DRACUT + script], env=env, capture_output=True, text=True, check=False)


def _serve(tmp_path: Path, data: bytes, published: bytes | None) -> Path:
    server = tmp_path / "server"
    server.mkdir()
    (server / "live.iso").write_bytes(data)
    if published is not None:
        (server / "live.iso.sha256").write_text(f"{hashlib.sha256(published).hexdigest()}  live.iso\n")
    return server


def test_a_download_matching_its_sha256_is_accepted(tmp_path: Path) -> None:
    _serve(tmp_path, b"iso bytes" * 1000, b"iso bytes" * 1000)
    done = _shell(tmp_path, f'fetch {URL} "$RUN/ram/live.img"; verify_download "$RUN/ram/live.img" {URL}')
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"download verified: sha256 matches {URL}.sha256" in done.stdout


def test_a_truncated_download_is_refused_with_both_sums(tmp_path: Path) -> None:
    whole = b"iso bytes" * 1000
    _serve(tmp_path, whole[:-512], whole)
    done = _shell(tmp_path, f'fetch {URL} "$RUN/ram/live.img"; verify_download "$RUN/ram/live.img" {URL}; echo USED')
    assert done.returncode == 1
    assert f"the download of {URL} is damaged or incomplete" in done.stdout
    assert hashlib.sha256(whole).hexdigest() in done.stdout
    assert "USED" not in done.stdout


def test_no_sha256_and_no_iso_checksum_is_refused(tmp_path: Path) -> None:
    _serve(tmp_path, b"not an iso" * 100, None)
    done = _shell(tmp_path, f'fetch {URL} "$RUN/ram/live.img"; verify_download "$RUN/ram/live.img" {URL}')
    assert done.returncode == 1
    assert f"cannot verify the download of {URL}: the server has no {URL}.sha256" in done.stdout


@needs_tools
def test_a_disk_holding_a_filesystem_is_not_wiped(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    subprocess.run(["truncate", "-s", "64M", str(disk)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-L", "users-data", str(disk)], check=True)
    before = hashlib.sha256(disk.read_bytes()).hexdigest()
    _serve(tmp_path, b"iso", b"iso")
    done = _shell(tmp_path, f"deploy_live_system {URL} {disk}", cmdline=f"rd.kiwi.live.system={disk}")
    assert done.returncode == 1
    assert f"rd.kiwi.live.system={disk} holds data (LABEL users-data TYPE ext4) and no live system: " \
           "not wiping it; add rd.kiwi.live.reset to overwrite the disk" in done.stdout
    assert hashlib.sha256(disk.read_bytes()).hexdigest() == before


@needs_tools
def test_a_blank_disk_holds_nothing(tmp_path: Path) -> None:
    disk = tmp_path / "disk.raw"
    subprocess.run(["truncate", "-s", "8M", str(disk)], check=True)
    done = _shell(tmp_path, f'echo "[$(disk_contents {disk})]"')
    assert done.stdout.strip() == "[]"
